package dev.taskq.client;

import dev.taskq.v1.QueueServiceGrpc;
import dev.taskq.v1.TaskServiceGrpc;
import io.grpc.ChannelCredentials;
import io.grpc.ClientInterceptor;
import io.grpc.Grpc;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.MethodDescriptor;
import io.grpc.ServiceDescriptor;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * Channels to a taskq server: retries, keepalive and message-size limits.
 *
 * <p>Retries come from gRPC's own retry support, configured by a service config: calls that
 * fail with UNAVAILABLE (server unreachable, starting, or draining for shutdown) are retried
 * with exponential backoff, within the call's deadline. Only unary methods are listed, because
 * a retried stream would silently restart a worker's subscription. A retried call may have
 * reached the server the first time; creates therefore always carry a {@code request_id},
 * which makes a repeated create return the first task instead of adding a second.
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

  /** Attempts in all for a call failing with UNAVAILABLE (gRPC caps it at 5)... */
  static final double RETRY_MAX_ATTEMPTS = 5;
  /** ...waiting a random time up to 0.2 s, 0.4 s, 0.8 s, 1.6 s between them (at most 5 s). */
  static final String RETRY_INITIAL_BACKOFF = "0.2s";
  static final String RETRY_MAX_BACKOFF = "5s";
  static final double RETRY_BACKOFF_MULTIPLIER = 2;

  /**
   * Requests up to this size are kept for a possible retry. gRPC's default (1 MiB) would
   * leave a create of a large task (up to 1 MiB of payload by default) without retries.
   */
  static final long RETRY_BUFFER_BYTES = 4L * 1024 * 1024;

  private Channels() {}

  /** A channel to {@code address} (host:port, or any gRPC target) with the taskq settings. */
  static ManagedChannel open(
      String address,
      ChannelCredentials credentials,
      List<ClientInterceptor> interceptors,
      Consumer<ManagedChannelBuilder<?>> customizer) {
    ManagedChannelBuilder<?> builder = Grpc.newChannelBuilder(address, credentials)
        .defaultServiceConfig(serviceConfig())
        .enableRetry()
        .maxRetryAttempts((int) RETRY_MAX_ATTEMPTS)
        .perRpcBufferLimit(RETRY_BUFFER_BYTES)
        .maxInboundMessageSize(MAX_MESSAGE_BYTES)
        .keepAliveTime(KEEPALIVE_TIME_SECONDS, TimeUnit.SECONDS)
        .keepAliveTimeout(KEEPALIVE_TIMEOUT_SECONDS, TimeUnit.SECONDS)
        // Pings only while calls are active: an idle client has nothing to keep alive.
        .keepAliveWithoutCalls(false)
        .userAgent("taskq-java")
        .intercept(interceptors);
    customizer.accept(builder);
    return builder.build();
  }

  /** The service config: retry UNAVAILABLE on the unary methods, with backoff. */
  static Map<String, Object> serviceConfig() {
    List<Object> names = new ArrayList<>();
    for (ServiceDescriptor service : List.of(
        TaskServiceGrpc.getServiceDescriptor(), QueueServiceGrpc.getServiceDescriptor())) {
      for (MethodDescriptor<?, ?> method : service.getMethods()) {
        if (method.getType() == MethodDescriptor.MethodType.UNARY) {
          names.add(Map.of("service", service.getName(), "method", method.getBareMethodName()));
        }
      }
    }
    Map<String, Object> retryPolicy = Map.of(
        "maxAttempts", RETRY_MAX_ATTEMPTS,
        "initialBackoff", RETRY_INITIAL_BACKOFF,
        "maxBackoff", RETRY_MAX_BACKOFF,
        "backoffMultiplier", RETRY_BACKOFF_MULTIPLIER,
        "retryableStatusCodes", List.of("UNAVAILABLE"));
    return Map.of(
        "methodConfig", List.of(Map.of("name", names, "retryPolicy", retryPolicy)),
        // Stops retrying when most calls fail (a server down for good) instead of multiplying
        // the load on one that is struggling: gRFC A6 "retry throttling".
        "retryThrottling", Map.of("maxTokens", 10.0, "tokenRatio", 0.1));
  }
}
