// Bearer tokens: `authorization: Bearer <token>` on every call and stream of a client.

import type { Interceptor } from "@connectrpc/connect";

/** A token that cannot be sent as a header value (spaces, control or non-ASCII characters). */
export class InvalidTokenError extends Error {
  override readonly name = "InvalidTokenError";
  constructor() {
    super("a bearer token is visible ASCII characters without spaces");
  }
}

/** An interceptor that sends the token with every request, unary or streaming; throws
 * InvalidTokenError for a token that cannot be a header. */
export function bearerToken(token: string): Interceptor {
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new InvalidTokenError();
  }
  const value = `Bearer ${token}`;
  return (next) => async (request) => {
    request.header.set("authorization", value);
    return next(request);
  };
}
