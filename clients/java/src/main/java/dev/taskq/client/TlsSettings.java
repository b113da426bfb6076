package dev.taskq.client;

import io.grpc.ChannelCredentials;
import io.grpc.TlsChannelCredentials;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Objects;

/**
 * How a client connects over TLS: which CAs to trust, a client certificate for servers that
 * require one (mTLS), and the name to expect in the server's certificate. Every part is
 * optional: {@link #DEFAULT} is TLS that trusts the JDK's CAs.
 *
 * <pre>{@code
 * TaskqClient.builder("https://taskq.example.com").build();            // TLS on 443, the JDK's CAs
 * TaskqClient.builder("taskq.internal:50051")
 *     .tls(TlsSettings.DEFAULT.withCaFile(Path.of("ca.pem"))
 *         .withClientCertificate(Path.of("client.pem"), Path.of("client-key.pem")))
 *     .build();                                                         // mTLS with a private CA
 * }</pre>
 *
 * <p>Given to {@link TaskqClient.Builder#tls}, settings mean TLS whatever the address's form
 * (except {@code http://}, which refuses them). The files are read when the client is built.
 */
public final class TlsSettings {
  /** TLS that trusts the JDK's CAs, without a client certificate. */
  public static final TlsSettings DEFAULT = new TlsSettings(null, null, null, null);

  private final Path caFile;
  private final Path certFile;
  private final Path keyFile;
  private final String serverName;

  private TlsSettings(Path caFile, Path certFile, Path keyFile, String serverName) {
    this.caFile = caFile;
    this.certFile = certFile;
    this.keyFile = keyFile;
    this.serverName = serverName;
  }

  /** These settings trusting the CA certificates (PEM) in {@code caFile} instead of the JDK's. */
  public TlsSettings withCaFile(Path caFile) {
    return new TlsSettings(Objects.requireNonNull(caFile, "caFile"), certFile, keyFile, serverName);
  }

  /**
   * These settings presenting a client certificate chain and its private key (PEM, PKCS#8),
   * for servers that require client certificates (mTLS).
   */
  public TlsSettings withClientCertificate(Path certFile, Path keyFile) {
    return new TlsSettings(caFile, Objects.requireNonNull(certFile, "certFile"),
        Objects.requireNonNull(keyFile, "keyFile"), serverName);
  }

  /**
   * These settings checking the server's certificate for {@code serverName} instead of the
   * address's host (the server is reached by IP address, through a tunnel or a load balancer's
   * own name). It becomes the channel's authority, sent as SNI too.
   */
  public TlsSettings withServerName(String serverName) {
    if (serverName == null || serverName.isBlank()) {
      throw new InvalidTlsSettingsException("serverName is empty");
    }
    return new TlsSettings(caFile, certFile, keyFile, serverName);
  }

  /** The CA file, or null for the JDK's CAs. */
  public Path caFile() {
    return caFile;
  }

  /** The client certificate chain, or null. */
  public Path certFile() {
    return certFile;
  }

  /** The client certificate's key, or null. */
  public Path keyFile() {
    return keyFile;
  }

  /** The name the server's certificate must hold, or null for the address's host. */
  public String serverName() {
    return serverName;
  }

  /**
   * gRPC channel credentials of these settings, reading the files now; {@link
   * InvalidTlsSettingsException} names one that cannot be used. The server name is not part of
   * them: give it to the channel builder as {@code overrideAuthority}.
   */
  public ChannelCredentials credentials() {
    byte[] ca = read("caFile", caFile, "CERTIFICATE");
    byte[] chain = read("certFile", certFile, "CERTIFICATE");
    byte[] key = read("keyFile", keyFile, "PRIVATE KEY");
    TlsChannelCredentials.Builder builder = TlsChannelCredentials.newBuilder();
    try {
      if (ca != null) {
        builder.trustManager(new ByteArrayInputStream(ca));
      }
      if (chain != null) {
        builder.keyManager(new ByteArrayInputStream(chain), new ByteArrayInputStream(key));
      }
    } catch (IOException | RuntimeException e) {
      throw new InvalidTlsSettingsException("the TLS files cannot be used (" + describe() + "): " + e.getMessage(), e);
    }
    return builder.build();
  }

  private String describe() {
    StringBuilder files = new StringBuilder();
    if (caFile != null) {
      files.append("caFile ").append(caFile);
    }
    if (certFile != null) {
      files.append(files.length() > 0 ? ", " : "").append("certFile ").append(certFile)
          .append(", keyFile ").append(keyFile);
    }
    return files.toString();
  }

  /**
   * The file's contents; {@link InvalidTlsSettingsException} if it cannot be read or holds no
   * PEM block of {@code pemType} (the handshake would only fail later, without naming the file).
   */
  private static byte[] read(String setting, Path path, String pemType) {
    if (path == null) {
      return null;
    }
    byte[] content;
    try {
      content = Files.readAllBytes(path);
    } catch (NoSuchFileException e) {
      throw new InvalidTlsSettingsException("cannot read " + setting + " " + path + ": no such file or directory", e);
    } catch (AccessDeniedException e) {
      throw new InvalidTlsSettingsException("cannot read " + setting + " " + path + ": permission denied", e);
    } catch (IOException e) {
      throw new InvalidTlsSettingsException("cannot read " + setting + " " + path + ": " + e.getMessage(), e);
    }
    if (!new String(content, StandardCharsets.ISO_8859_1).contains(pemType + "-----")) {
      throw new InvalidTlsSettingsException(setting + " " + path + " holds no PEM "
          + (pemType.equals("CERTIFICATE") ? "certificate" : "private key"));
    }
    return content;
  }

  @Override
  public String toString() {
    return "TlsSettings{" + (describe().isEmpty() ? "the JDK's CAs" : describe())
        + (serverName != null ? ", serverName " + serverName : "") + "}";
  }
}
