package dev.taskq.client;

import io.grpc.ChannelCredentials;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ClientInterceptor;
import io.grpc.Grpc;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * Channels to a taskq server: keepalive and message-size limits.
 *
 * <p>The channel has no retry policy (service config) of its own: {@link TaskqClient} retries
 * calls failing with UNAVAILABLE itself, for long enough to cover a restart of the server (see
 * {@link CallRetry}, which says why gRPC's policy is not enough). gRPC's transparent retries
 * stay on: they resend only requests that never reached the server. Streams are never
 * retried; the workers subscribe again on their own.
 */
final class Channels {
  /** Largest message received, bytes: the server's default limit (32 MiB). */
  static final int MAX_MESSAGE_BYTES = 32 * 1024 * 1024;

  /**
   * Keepalive ping interval on a connection with calls in progress. The server allows pings
   * every 10 s even without data, and answers faster ones with GOAWAY "too many pings".
   */
  static final long KEEPALIVE_TIME_SECONDS = 30;
  /** How long a ping may go unanswered before the connection counts as dead. */
  static final long KEEPALIVE_TIMEOUT_SECONDS = 10;

  /**
   * Requests up to this size are kept for a possible transparent retry, bytes. gRPC's default
   * (1 MiB) would leave a create of a large task (up to 1 MiB of payload by default) without one.
   */
  static final long RETRY_BUFFER_BYTES = 4L * 1024 * 1024;

  private Channels() {}

  /**
   * A channel to {@code address} (see {@link ServerAddress}) with the taskq settings: TLS when
   * the address is https:// or {@code tls} is given ({@code credentials}, when given, take
   * their place). Throws {@link InvalidAddressException} or {@link InvalidTlsSettingsException},
   * and with {@code checkToken} {@link PlaintextTokenException} for a plain-text channel to
   * another machine.
   */
  static ManagedChannel open(
      String address,
      ChannelCredentials credentials,
      TlsSettings tls,
      boolean checkToken,
      List<ClientInterceptor> interceptors,
      Consumer<ManagedChannelBuilder<?>> customizer) {
    ServerAddress parsed = ServerAddress.parse(address);
    if (credentials != null && tls != null) {
      throw new IllegalArgumentException("credentials(...) and tls(...) both choose the credentials: give one");
    }
    boolean secure = tls != null || (credentials != null && !(credentials instanceof InsecureChannelCredentials));
    if (parsed.tls() == ServerAddress.Tls.NEVER && secure) {
      throw new InvalidAddressException(address,
          "http:// means plain text, but TLS settings were given (use https:// or host:port)");
    }
    if (credentials == null) {
      credentials = tls != null || parsed.tls() == ServerAddress.Tls.ALWAYS
          ? (tls != null ? tls : TlsSettings.DEFAULT).credentials()
          : InsecureChannelCredentials.create();
    }
    if (checkToken && credentials instanceof InsecureChannelCredentials && !parsed.isLocal()) {
      throw new PlaintextTokenException("refusing to send a token in plain text to " + address
          + ": anyone on the way could copy it and call as you. Connect with TLS (https://..., or tls(...) "
          + "settings such as a CA file), or allow it explicitly (allowPlaintextToken()) when the network "
          + "itself is protected");
    }
    String target = switch (parsed.kind()) {
      // Said explicitly: grpc-java would take a host named like a resolver (unix) for a scheme.
      // Its target parser wants an IPv6 address's brackets percent-encoded in the path.
      case ENDPOINT -> "dns:///" + parsed.target().replace("[", "%5B").replace("]", "%5D");
      case DNS -> parsed.target().replaceFirst("\\[(.*)]:", "%5B$1%5D:");
      case UNIX -> parsed.target();
      // grpc-java has no resolver for ipv4:/ipv6: lists; ListNameResolver is the channel's.
      case LIST -> ListNameResolver.SCHEME + ":///" + parsed.target().replace("[", "%5B").replace("]", "%5D");
    };
    ManagedChannelBuilder<?> builder = Grpc.newChannelBuilder(target, credentials)
        // Transparent retries only (no service config): see the class comment.
        .enableRetry()
        .perRpcBufferLimit(RETRY_BUFFER_BYTES)
        .maxInboundMessageSize(MAX_MESSAGE_BYTES)
        .keepAliveTime(KEEPALIVE_TIME_SECONDS, TimeUnit.SECONDS)
        .keepAliveTimeout(KEEPALIVE_TIMEOUT_SECONDS, TimeUnit.SECONDS)
        // Pings only while calls are active: an idle client has nothing to keep alive.
        .keepAliveWithoutCalls(false)
        .userAgent("taskq-java")
        .intercept(interceptors);
    if (parsed.kind() == ServerAddress.Kind.LIST) {
      ListNameResolver.install(builder, parsed.endpoints());
    }
    if (tls != null && tls.serverName() != null) {
      builder.overrideAuthority(tls.serverName());
    }
    customizer.accept(builder);
    return builder.build();
  }
}
