package dev.taskq.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.taskq.v1.GetTaskRequest;
import dev.taskq.v1.GetTaskResponse;
import dev.taskq.v1.Task;
import dev.taskq.v1.TaskServiceGrpc;
import io.grpc.Grpc;
import io.grpc.InsecureServerCredentials;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.concurrent.CompletionException;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The client's retries of UNAVAILABLE, against a stand-in server that fails on purpose (the real
 * one cannot be made to answer UNAVAILABLE on demand; RetryTest restarts it and loses answers).
 */
class ChannelsTest {
  private final AtomicInteger attempts = new AtomicInteger();
  private Server server;
  private Status.Code failure;
  private int failures;

  @BeforeEach
  void startStandIn() throws Exception {
    server = Grpc.newServerBuilderForPort(0, InsecureServerCredentials.create())
        .addService(new TaskServiceGrpc.TaskServiceImplBase() {
          @Override
          public void getTask(GetTaskRequest request, StreamObserver<GetTaskResponse> response) {
            if (attempts.incrementAndGet() <= failures) {
              response.onError(failure.toStatus().withDescription("not now").asRuntimeException());
              return;
            }
            response.onNext(GetTaskResponse.newBuilder()
                .setTask(Task.newBuilder().setName(request.getName()))
                .build());
            response.onCompleted();
          }
        })
        .build()
        .start();
  }

  @AfterEach
  void stopStandIn() {
    server.shutdownNow();
  }

  @Test
  void unaryCallsFailingWithUnavailableAreRetried() {
    failure = Status.Code.UNAVAILABLE;
    failures = 3;
    try (TaskqClient client = TaskqClient.connect("127.0.0.1:" + server.getPort())) {
      assertEquals("queues/q/tasks/t", client.getTask("queues/q/tasks/t").getName());
    }
    assertEquals(4, attempts.get());
  }

  @Test
  void retriesStopWhenTheBudgetIsSpent() {
    failure = Status.Code.UNAVAILABLE;
    failures = 1_000_000;
    try (TaskqClient client = TaskqClient.builder("127.0.0.1:" + server.getPort())
        .retry(CallRetry.DEFAULT.withBudget(Duration.ofMillis(500)))
        .build()) {
      TaskqException error =
          assertThrows(TaskqException.class, () -> client.getTask("queues/q/tasks/t"));
      assertEquals(Status.Code.UNAVAILABLE, error.code());
      assertEquals("", error.reason());
      // The async path gives up the same way.
      TaskqException async = TaskqException.from(assertThrows(CompletionException.class,
          () -> client.getTaskAsync("queues/q/tasks/t").join()));
      assertEquals(Status.Code.UNAVAILABLE, async.code());
    }
    assertTrue(attempts.get() > 2, "retried until the budget was spent: " + attempts.get());
  }

  @Test
  void withoutRetriesUnavailableIsThrownAtOnce() {
    failure = Status.Code.UNAVAILABLE;
    failures = 1;
    try (TaskqClient client = TaskqClient.builder("127.0.0.1:" + server.getPort())
        .retry(CallRetry.DISABLED)
        .build()) {
      assertEquals(Status.Code.UNAVAILABLE,
          assertThrows(TaskqException.class, () -> client.getTask("queues/q/tasks/t")).code());
    }
    assertEquals(1, attempts.get());
  }

  @Test
  void otherErrorsAreNotRetried() {
    failure = Status.Code.INTERNAL;
    failures = 1;
    try (TaskqClient client = TaskqClient.connect("127.0.0.1:" + server.getPort())) {
      assertEquals(Status.Code.INTERNAL,
          assertThrows(TaskqException.class, () -> client.getTask("queues/q/tasks/t")).code());
    }
    assertEquals(1, attempts.get());
  }
}
