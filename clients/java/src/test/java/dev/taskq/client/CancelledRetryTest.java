package dev.taskq.client;

import static dev.taskq.client.Fixtures.payload;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.taskq.v1.CreateTaskRequest;
import dev.taskq.v1.CreateTaskResponse;
import dev.taskq.v1.Task;
import dev.taskq.v1.TaskServiceGrpc;
import io.grpc.Context;
import io.grpc.Grpc;
import io.grpc.InsecureServerCredentials;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * A CANCELLED the caller did not cause is retried like UNAVAILABLE: a server stopping gracefully
 * cancels the calls it has received but not yet handled. The real server cannot be made to do
 * that on cue, so a stand-in TaskService answers CANCELLED to the first attempts instead.
 */
class CancelledRetryTest {
  private static final CallRetry QUICK = CallRetry.DEFAULT.withInitialBackoff(Duration.ofMillis(10));

  /** Answers CANCELLED to the first {@code failures} CreateTask attempts; records their ids. */
  private static final class CancellingTaskService extends TaskServiceGrpc.TaskServiceImplBase {
    final List<String> requestIds = new CopyOnWriteArrayList<>();
    private final int failures;

    CancellingTaskService(int failures) {
      this.failures = failures;
    }

    @Override
    public void createTask(CreateTaskRequest request,
        StreamObserver<CreateTaskResponse> responses) {
      requestIds.add(request.getRequestId());
      if (requestIds.size() <= failures) {
        responses.onError(Status.CANCELLED.withDescription("server shutting down").asException());
        return;
      }
      responses.onNext(CreateTaskResponse.newBuilder()
          .setTask(Task.newBuilder().setName(request.getParent() + "/tasks/t")).build());
      responses.onCompleted();
    }
  }

  private Server server;

  private String serve(CancellingTaskService service) throws Exception {
    server = Grpc.newServerBuilderForPort(0, InsecureServerCredentials.create())
        .addService(service).build().start();
    return "127.0.0.1:" + server.getPort();
  }

  @AfterEach
  void stopServer() throws InterruptedException {
    if (server != null) {
      server.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
    }
  }

  private static void assertOneRequestIdOnThreeAttempts(CancellingTaskService service) {
    assertEquals(3, service.requestIds.size(), "attempts");
    assertFalse(service.requestIds.get(0).isEmpty());
    assertEquals(Set.of(service.requestIds.get(0)), Set.copyOf(service.requestIds));
  }

  @Test
  void aSyncCallCancelledByTheServerIsRetriedWithTheSameRequest() throws Exception {
    CancellingTaskService service = new CancellingTaskService(2);
    try (TaskqClient client = TaskqClient.builder(serve(service))
        .batching(BatchSettings.DISABLED).retry(QUICK).build()) {
      assertEquals("queues/q/tasks/t", client.createTask("q", payload("x")).getName());
    }
    assertOneRequestIdOnThreeAttempts(service);
  }

  @Test
  void anAsyncCallCancelledByTheServerIsRetriedWithTheSameRequest() throws Exception {
    CancellingTaskService service = new CancellingTaskService(2);
    try (TaskqClient client = TaskqClient.builder(serve(service))
        .batching(BatchSettings.DISABLED).retry(QUICK).build()) {
      Task task = client.createTaskAsync("q", payload("x")).get(30, TimeUnit.SECONDS);
      assertEquals("queues/q/tasks/t", task.getName());
    }
    assertOneRequestIdOnThreeAttempts(service);
  }

  @Test
  void withoutRetriesACancelledFromTheServerIsThrown() throws Exception {
    CancellingTaskService service = new CancellingTaskService(1);
    try (TaskqClient client = TaskqClient.builder(serve(service))
        .batching(BatchSettings.DISABLED).retry(CallRetry.DISABLED).build()) {
      TaskqException error =
          assertThrows(TaskqException.class, () -> client.createTask("q", payload("x")));
      assertEquals(Status.Code.CANCELLED, error.code());
    }
    assertEquals(1, service.requestIds.size());
  }

  @Test
  void callsWhoseCallerCancelsTheirContextAreNotRetried() throws Exception {
    CancellingTaskService service = new CancellingTaskService(Integer.MAX_VALUE);
    CallRetry slow = CallRetry.DEFAULT
        .withInitialBackoff(Duration.ofMillis(200)).withMaxBackoff(Duration.ofMillis(200));
    ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor();
    try (TaskqClient client = TaskqClient.builder(serve(service))
        .batching(BatchSettings.DISABLED).retry(slow).build()) {
      for (boolean async : new boolean[] {false, true}) {
        Context.CancellableContext context = Context.current().withCancellation();
        timer.schedule(() -> context.cancel(null), 500, TimeUnit.MILLISECONDS);
        long started = System.nanoTime();
        TaskqException error = assertThrows(TaskqException.class, () -> context.call(() -> async
            ? TaskqClient.await(client.createTaskAsync("q", payload("x")))
            : client.createTask("q", payload("x"))));
        long elapsedMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started);
        assertEquals(Status.Code.CANCELLED, error.code(), (async ? "async: " : "sync: ") + error);
        assertTrue(elapsedMs < 5_000, "gave up " + elapsedMs + " ms in, not at the budget's end");
      }
    } finally {
      timer.shutdownNow();
    }
  }
}
