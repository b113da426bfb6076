package dev.taskq.client;

import static org.junit.jupiter.api.Assertions.fail;

import com.google.protobuf.ByteString;
import dev.taskq.v1.Queue;
import dev.taskq.v1.QueueType;
import dev.taskq.v1.RetryConfig;
import dev.taskq.v1.StreamTasksRequest;
import dev.taskq.v1.Task;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.MethodDescriptor;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;

/** Queues, tasks and waiting, shared by the tests. */
final class Fixtures {
  private Fixtures() {}

  /** A queue id no other test uses. */
  static String queueId(String prefix) {
    return prefix + "-" + UUID.randomUUID().toString().substring(0, 8);
  }

  static Queue pushQueue(TaskqClient client, String prefix) {
    return client.createQueue(Queue.newBuilder()
        .setName(queueId(prefix))
        .setType(QueueType.QUEUE_TYPE_PUSH)
        .build());
  }

  /** A push queue whose retries wait a minute at least: a nacked task stays scheduled. */
  static Queue slowRetryPushQueue(TaskqClient client, String prefix) {
    return client.createQueue(Queue.newBuilder()
        .setName(queueId(prefix))
        .setType(QueueType.QUEUE_TYPE_PUSH)
        .setRetryConfig(RetryConfig.newBuilder()
            .setMinBackoff(ProtoTimes.duration(Duration.ofMinutes(1)))
            .setMaxBackoff(ProtoTimes.duration(Duration.ofMinutes(10))))
        .build());
  }

  static Queue pullQueue(TaskqClient client, String prefix) {
    return client.createQueue(Queue.newBuilder()
        .setName(queueId(prefix))
        .setType(QueueType.QUEUE_TYPE_PULL)
        .build());
  }

  static Task payload(String text) {
    return Task.newBuilder().setPayload(ByteString.copyFromUtf8(text)).build();
  }

  /** Waits up to {@code timeout} for {@code condition}, failing with {@code what}. */
  static void eventually(Duration timeout, String what, BooleanSupplier condition)
      throws InterruptedException {
    Instant deadline = Instant.now().plus(timeout);
    while (!condition.getAsBoolean()) {
      if (Instant.now().isAfter(deadline)) {
        fail("timed out after " + timeout + " waiting for: " + what);
      }
      Thread.sleep(20);
    }
  }

  /** Keeps every message the client sends on StreamTasks streams. */
  static final class StreamRecorder implements ClientInterceptor {
    final List<StreamTasksRequest> sent = new CopyOnWriteArrayList<>();

    @Override
    public <Q, S> ClientCall<Q, S> interceptCall(
        MethodDescriptor<Q, S> method, CallOptions options, Channel next) {
      ClientCall<Q, S> call = next.newCall(method, options);
      if (!method.getBareMethodName().equals("StreamTasks")) {
        return call;
      }
      return new ForwardingClientCall.SimpleForwardingClientCall<>(call) {
        @Override
        public void sendMessage(Q message) {
          sent.add((StreamTasksRequest) message);
          super.sendMessage(message);
        }
      };
    }
  }

  /** Counts the calls of each method (by bare name, e.g. {@code BatchCreateTasks}). */
  static final class CallCounter implements ClientInterceptor {
    private final Map<String, AtomicInteger> counts = new ConcurrentHashMap<>();

    @Override
    public <Q, S> ClientCall<Q, S> interceptCall(
        MethodDescriptor<Q, S> method, CallOptions options, Channel next) {
      counts.computeIfAbsent(method.getBareMethodName(), name -> new AtomicInteger())
          .incrementAndGet();
      return next.newCall(method, options);
    }

    int count(String method) {
      AtomicInteger count = counts.get(method);
      return count == null ? 0 : count.get();
    }
  }
}
