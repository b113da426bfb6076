// Bearer tokens: `authorization: Bearer <token>` on every call and stream of a client, as every
// taskq client sends them (docs/security.md):
//
//     createTaskqClient({ address: "https://taskq.example.com", tokenFile: "/var/run/secrets/taskq/token" });
//
// Without `token` or `tokenFile`, the environment's TASKQ_TOKEN, else TASKQ_TOKEN_FILE, is used.
// A token file is read again when it changes (a rotated Kubernetes Secret), looked at before
// each call. A token is refused over a plain-text connection to anything but this machine
// (PlaintextTokenError): whoever can see the traffic could copy it and call as its holder. Use
// TLS, or `allowPlaintextToken: true` when the network is otherwise protected (a service mesh's
// mTLS between sidecars).

import { readFileSync, statSync, type Stats } from "node:fs";
import type { Interceptor } from "@connectrpc/connect";

/** Environment variables read when no token is given. */
export const TOKEN_ENV = "TASKQ_TOKEN";
export const TOKEN_FILE_ENV = "TASKQ_TOKEN_FILE";

/** A token or token file that cannot be used (empty, not one word of visible ASCII characters,
 * unreadable). */
export class InvalidTokenError extends Error {
  override readonly name = "InvalidTokenError";
}

/** A token would be sent in plain text over a network; the message says what to do. */
export class PlaintextTokenError extends Error {
  override readonly name = "PlaintextTokenError";
}

/** A token given as such, or read from a file (again when the file changes). */
export class BearerToken {
  readonly file: string | undefined;
  #token = "";
  #stats: Stats | undefined;

  constructor(source: { token: string } | { file: string }) {
    if ("token" in source) {
      this.file = undefined;
      this.#token = checked(source.token, "the token");
    } else {
      this.file = source.file;
      this.token(); // an unreadable file fails now, not at the first call
    }
  }

  /** The token (read again first if its file changed). */
  token(): string {
    if (this.file === undefined) {
      return this.#token;
    }
    try {
      const stats = statSync(this.file);
      const previous = this.#stats;
      if (
        !previous ||
        stats.ino !== previous.ino ||
        stats.dev !== previous.dev ||
        stats.size !== previous.size ||
        stats.mtimeMs !== previous.mtimeMs
      ) {
        this.#token = checked(readFileSync(this.file, "utf8"), `the token file ${this.file}`);
        this.#stats = stats;
      }
    } catch (error) {
      if (!this.#token) {
        throw error instanceof InvalidTokenError
          ? error
          : new InvalidTokenError(`cannot read the token file ${this.file}: ${(error as Error).message}`);
      }
      // Mid-rotation (a file briefly gone): the token read before is still the best guess.
    }
    return this.#token;
  }

  /** The interceptor that sends it with every request, unary or streaming. */
  interceptor(): Interceptor {
    return (next) => async (request) => {
      request.header.set("authorization", `Bearer ${this.token()}`);
      return next(request);
    };
  }
}

function checked(text: string, what: string): string {
  const token = text.trim();
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new InvalidTokenError(`${what} must be one word of visible ASCII characters`);
  }
  return token;
}

/** The token given (`""`: none), else the environment's (TASKQ_TOKEN, TASKQ_TOKEN_FILE);
 * undefined without one. */
export function bearerTokenFrom(
  options: { token?: string; tokenFile?: string },
  env: NodeJS.ProcessEnv = process.env,
): BearerToken | undefined {
  if (options.token !== undefined && options.tokenFile !== undefined) {
    throw new InvalidTokenError("give a token or a token file, not both");
  }
  let { token, tokenFile } = options;
  if (token === undefined && tokenFile === undefined) {
    token = env[TOKEN_ENV] || undefined;
    tokenFile = token === undefined ? env[TOKEN_FILE_ENV] || undefined : undefined;
  }
  if (token !== undefined) {
    return token === "" ? undefined : new BearerToken({ token });
  }
  return tokenFile !== undefined ? new BearerToken({ file: tokenFile }) : undefined;
}

/** An interceptor that sends `token` with every request, for a transport of your own; throws
 * InvalidTokenError for a token that cannot be a header. */
export function bearerToken(token: string): Interceptor {
  return new BearerToken({ token }).interceptor();
}
