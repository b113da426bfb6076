package dev.taskq.client;

import io.grpc.ClientInterceptor;
import io.grpc.Metadata;
import io.grpc.stub.MetadataUtils;

/** Bearer tokens: {@code authorization: Bearer <token>} on every call of a client. */
final class Tokens {
  static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  private Tokens() {}

  /** The token, if it can be a header value; IllegalArgumentException otherwise. */
  static String check(String token) {
    if (!token.matches("[\\x21-\\x7e]+")) {
      throw new IllegalArgumentException("a bearer token is visible ASCII characters without spaces");
    }
    return token;
  }

  /** An interceptor that sends the token with every call, unary or streaming. */
  static ClientInterceptor interceptor(String token) {
    Metadata headers = new Metadata();
    headers.put(AUTHORIZATION, "Bearer " + token);
    return MetadataUtils.newAttachHeadersInterceptor(headers);
  }
}
