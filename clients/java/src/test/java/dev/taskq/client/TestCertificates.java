package dev.taskq.client;

import java.io.IOException;
import java.io.Writer;
import java.math.BigInteger;
import java.net.InetAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Date;
import java.util.List;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.operator.OperatorCreationException;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.util.io.pem.PemObject;

/**
 * Certificates for the TLS tests, made with BouncyCastle (keys from the JDK): a CA, a server
 * certificate for the names the tests connect with, and a client certificate for mTLS, written
 * as PEM files (keys PKCS#8) into a directory.
 */
final class TestCertificates {
  final Path ca;
  final Path serverCert;
  final Path serverKey;
  final Path clientCert;
  final Path clientKey;

  private TestCertificates(Path dir) {
    ca = dir.resolve("ca.pem");
    serverCert = dir.resolve("server.pem");
    serverKey = dir.resolve("server-key.pem");
    clientCert = dir.resolve("client.pem");
    clientKey = dir.resolve("client-key.pem");
  }

  /** A CA, a server certificate for {@code names} (DNS names or IP addresses) and a client certificate. */
  static TestCertificates write(Path dir, String... names) throws Exception {
    TestCertificates files = new TestCertificates(dir);
    KeyPair caKey = newKey();
    X500Name caName = new X500Name("CN=taskq Java test CA");
    Instant now = Instant.now();
    X509CertificateHolder ca = new JcaX509v3CertificateBuilder(caName, BigInteger.ONE,
        Date.from(now.minus(Duration.ofHours(1))), Date.from(now.plus(Duration.ofDays(2))), caName, caKey.getPublic())
        .addExtension(Extension.basicConstraints, true, new BasicConstraints(true))
        .build(signer(caKey));
    writePem(files.ca, "CERTIFICATE", ca.getEncoded());

    List<GeneralName> alternatives = new ArrayList<>();
    for (String name : names) {
      boolean ip = Character.isDigit(name.charAt(0)) || name.contains(":");
      alternatives.add(ip
          ? new GeneralName(GeneralName.iPAddress, InetAddress.getByName(name).getHostAddress())
          : new GeneralName(GeneralName.dNSName, name));
    }
    issue(caName, caKey, 2, "CN=" + names[0], KeyPurposeId.id_kp_serverAuth,
        new GeneralNames(alternatives.toArray(GeneralName[]::new)), files.serverCert, files.serverKey);
    issue(caName, caKey, 3, "CN=taskq Java test worker", KeyPurposeId.id_kp_clientAuth, null,
        files.clientCert, files.clientKey);
    return files;
  }

  private static void issue(X500Name caName, KeyPair caKey, long serial, String subject, KeyPurposeId usage,
      GeneralNames alternatives, Path certFile, Path keyFile) throws Exception {
    KeyPair key = newKey();
    Instant now = Instant.now();
    JcaX509v3CertificateBuilder builder = new JcaX509v3CertificateBuilder(caName, BigInteger.valueOf(serial),
        Date.from(now.minus(Duration.ofHours(1))), Date.from(now.plus(Duration.ofDays(1))),
        new X500Name(subject), key.getPublic());
    builder.addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(usage));
    if (alternatives != null) {
      builder.addExtension(Extension.subjectAlternativeName, false, alternatives);
    }
    writePem(certFile, "CERTIFICATE", builder.build(signer(caKey)).getEncoded());
    writePem(keyFile, "PRIVATE KEY", key.getPrivate().getEncoded()); // PKCS#8
  }

  private static KeyPair newKey() throws GeneralSecurityException {
    KeyPairGenerator generator = KeyPairGenerator.getInstance("EC");
    generator.initialize(new ECGenParameterSpec("secp256r1"));
    return generator.generateKeyPair();
  }

  private static org.bouncycastle.operator.ContentSigner signer(KeyPair key) throws OperatorCreationException {
    return new JcaContentSignerBuilder("SHA256withECDSA").build(key.getPrivate());
  }

  private static void writePem(Path path, String type, byte[] der) throws IOException {
    try (Writer out = Files.newBufferedWriter(path); JcaPEMWriter pem = new JcaPEMWriter(out)) {
      pem.writeObject(new PemObject(type, der));
    }
  }
}
