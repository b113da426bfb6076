package dev.taskq.client;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Bearer tokens: {@code authorization: Bearer <token>} on every call of a client, given as such
 * or read from a file (again when the file changes: a rotated Kubernetes Secret), else taken
 * from the environment (TASKQ_TOKEN, else TASKQ_TOKEN_FILE), as every taskq client does.
 */
final class Tokens {
  static final String TOKEN_ENV = "TASKQ_TOKEN";
  static final String TOKEN_FILE_ENV = "TASKQ_TOKEN_FILE";

  static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  private final Path file;
  private String token;
  private List<Object> fileState; // what was read: file key, size, modification time

  private Tokens(String token, Path file) {
    this.token = token;
    this.file = file;
  }

  /** A token given as such; InvalidTokenException if it cannot be one. */
  static Tokens of(String token) {
    return new Tokens(check(token, "the token"), null);
  }

  /** A token read from {@code file} now, and again when it changes. */
  static Tokens fromFile(Path file) {
    Tokens tokens = new Tokens("", Objects.requireNonNull(file, "file"));
    tokens.token(); // an unreadable file fails now, not at the first call
    return tokens;
  }

  /** The environment's token (TASKQ_TOKEN, else TASKQ_TOKEN_FILE), or null. */
  static Tokens fromEnvironment(Map<String, String> env) {
    String token = env.get(TOKEN_ENV);
    if (token != null && !token.isEmpty()) {
      return of(token);
    }
    String file = env.get(TOKEN_FILE_ENV);
    return file != null && !file.isEmpty() ? fromFile(Path.of(file)) : null;
  }

  /** The token (its file read again first if it changed). */
  synchronized String token() {
    if (file == null) {
      return token;
    }
    try {
      BasicFileAttributes attributes = Files.readAttributes(file, BasicFileAttributes.class);
      List<Object> state = java.util.Arrays.asList(
          attributes.fileKey(), attributes.size(), attributes.lastModifiedTime());
      if (!state.equals(fileState)) {
        token = check(new String(Files.readAllBytes(file), StandardCharsets.UTF_8), "the token file " + file);
        fileState = state;
      }
    } catch (IOException | InvalidTokenException e) {
      if (token.isEmpty()) {
        if (e instanceof InvalidTokenException invalid) {
          throw invalid;
        }
        String why = e instanceof NoSuchFileException ? "no such file or directory" : e.getMessage();
        throw new InvalidTokenException("cannot read the token file " + file + ": " + why);
      }
      // Mid-rotation (a file briefly gone or half written), the token read before is still
      // the best guess.
    }
    return token;
  }

  /** The token without surrounding whitespace, if it is one word of visible ASCII characters. */
  static String check(String text, String what) {
    String token = text.strip();
    if (!token.matches("[\\x21-\\x7e]+")) {
      throw new InvalidTokenException(what + " must be one word of visible ASCII characters");
    }
    return token;
  }

  /** An interceptor that sends the token with every call, unary or streaming. */
  ClientInterceptor interceptor() {
    return new ClientInterceptor() {
      @Override
      public <Q, A> ClientCall<Q, A> interceptCall(
          MethodDescriptor<Q, A> method, CallOptions options, Channel next) {
        return new ForwardingClientCall.SimpleForwardingClientCall<>(next.newCall(method, options)) {
          @Override
          public void start(Listener<A> listener, Metadata headers) {
            headers.put(AUTHORIZATION, "Bearer " + token());
            super.start(listener, headers);
          }
        };
      }
    };
  }
}
