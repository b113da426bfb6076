package dev.taskq.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.taskq.v1.GetTaskRequest;
import dev.taskq.v1.GetTaskResponse;
import dev.taskq.v1.Task;
import dev.taskq.v1.TaskServiceGrpc;
import io.grpc.Grpc;
import io.grpc.InsecureServerCredentials;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The retry policy of a client's channel, against a stand-in server that fails on purpose
 * (the real one cannot be made to answer UNAVAILABLE on demand).
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
  void retriesStopAfterFiveAttempts() {
    failure = Status.Code.UNAVAILABLE;
    failures = 100;
    try (TaskqClient client = TaskqClient.connect("127.0.0.1:" + server.getPort())) {
      TaskqException error =
          assertThrows(TaskqException.class, () -> client.getTask("queues/q/tasks/t"));
      assertEquals(Status.Code.UNAVAILABLE, error.code());
      assertEquals("", error.reason());
    }
    assertEquals(5, attempts.get());
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
