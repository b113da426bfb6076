// Certificates for the TLS tests, made with the openssl command (Debian's `openssl` package;
// Node can sign nothing itself): a CA, a server certificate for the names the tests connect
// with, and a client certificate for mTLS, as PEM files in a new directory.

import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Certificates {
  readonly dir: string;
  /** The CA certificate, which signs the server's and the client's. */
  readonly ca: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
}

function openssl(dir: string, ...args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
}

/** A CA, a server certificate for `names` (DNS names or IP addresses) and a client
 * certificate, written into a new temporary directory. */
export function makeCertificates(...names: string[]): Certificates {
  const dir = mkdtempSync(join(tmpdir(), "taskq-node-tls-"));
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  openssl(dir, "req", "-x509", ...ec, "-days", "2", "-subj", "/CN=taskq Node test CA", "-keyout", "ca-key.pem", "-out", "ca.pem");
  const issue = (name: string, subject: string, extensions: string) => {
    writeFileSync(join(dir, `${name}.ext`), extensions);
    openssl(dir, "req", ...ec, "-subj", subject, "-keyout", `${name}-key.pem`, "-out", `${name}.csr`);
    openssl(dir, "x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
      "-days", "1", "-extfile", `${name}.ext`, "-out", `${name}.pem`);
  };
  const alternatives = names.map((name) => (isIP(name) ? `IP:${name}` : `DNS:${name}`)).join(",");
  issue("server", `/CN=${names[0]}`, `subjectAltName=${alternatives}\nextendedKeyUsage=serverAuth\n`);
  issue("client", "/CN=taskq Node test worker", "extendedKeyUsage=clientAuth\n");
  return {
    dir,
    ca: join(dir, "ca.pem"),
    serverCert: join(dir, "server.pem"),
    serverKey: join(dir, "server-key.pem"),
    clientCert: join(dir, "client.pem"),
    clientKey: join(dir, "client-key.pem"),
  };
}
