// TLS settings of a client: which CAs to trust, a client certificate for servers that require
// one (mTLS), and the name to expect in the server's certificate.
//
//     createTaskqClient({ address: "https://taskq.example.com" });   // TLS, Node's CAs, port 443
//     createTaskqClient({ address: "taskq.internal:50051",
//       tls: { caFile: "ca.pem", certFile: "client.pem", keyFile: "client-key.pem" } }); // mTLS
//
// Given settings mean TLS, whatever the address's form (except http://, which refuses them).
// The files are read when the client is made.

import { readFileSync } from "node:fs";

/** How to connect over TLS. Every field is optional: `{}` is TLS that trusts Node's CAs. */
export interface TlsSettings {
  /** CA certificates (PEM) that sign the server's certificate; default: Node's root CAs. */
  caFile?: string;
  /** The client's certificate chain (PEM), for servers that require client certificates
   * (mTLS); with `keyFile`. */
  certFile?: string;
  /** The private key (PEM) of `certFile`. */
  keyFile?: string;
  /** The name the server's certificate must hold when it is not the address's host (the
   * server is reached by IP address, through a tunnel or a load balancer's own name); also
   * sent as the TLS server name (SNI). */
  serverName?: string;
}

/** TLS settings that cannot be used (a missing or unreadable file, a key without its
 * certificate); the message names the setting and the file. */
export class InvalidTlsSettingsError extends Error {
  override readonly name = "InvalidTlsSettingsError";
}

/** The files' contents, for tls.connect. */
export interface TlsMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  serverName?: string;
}

/** Reads the settings' files; throws InvalidTlsSettingsError naming one that cannot be used. */
export function readTlsSettings(settings: TlsSettings): TlsMaterial {
  if ((settings.certFile === undefined) !== (settings.keyFile === undefined)) {
    throw new InvalidTlsSettingsError("certFile and keyFile go together: give both for a client certificate, or neither");
  }
  return {
    ca: read("caFile", settings.caFile, "CERTIFICATE"),
    cert: read("certFile", settings.certFile, "CERTIFICATE"),
    key: read("keyFile", settings.keyFile, "PRIVATE KEY"),
    serverName: settings.serverName,
  };
}

/** The file's contents; InvalidTlsSettingsError if it cannot be read or holds no PEM block of
 * `pemType` (the handshake would only fail later, without naming the file). */
function read(setting: string, path: string | undefined, pemType: string): Buffer | undefined {
  if (path === undefined) {
    return undefined;
  }
  let content: Buffer;
  try {
    content = readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file or directory" : code === "EACCES" ? "permission denied" : String(error);
    throw new InvalidTlsSettingsError(`cannot read ${setting} ${path}: ${why}`);
  }
  if (!content.includes(`${pemType}-----`)) {
    throw new InvalidTlsSettingsError(`${setting} ${path} holds no PEM ${pemType === "CERTIFICATE" ? "certificate" : "private key"}`);
  }
  return content;
}
