package dev.taskq.client;

import static dev.taskq.client.Fixtures.payload;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.taskq.v1.Queue;
import dev.taskq.v1.QueueType;
import dev.taskq.v1.Task;
import io.grpc.Status;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Retries of unary calls against the real server: across a restart of the server, and after an
 * answer lost once the server had done the work (through {@code tests/support/flaky_proxy.py}).
 */
@ExtendWith(SharedServer.class)
class RetryTest {
  /**
   * How long the restart test keeps the server down: longer than gRPC's own retry policy used
   * to cover.
   */
  private static final Duration DOWNTIME = Duration.ofSeconds(2);

  @Test
  void aCreateMadeWhileTheServerIsDownSucceedsOnceItIsBackAndAddsOneTask() throws Exception {
    // A server of its own: the test restarts it on the same port and data directory.
    try (TaskqServer own = TaskqServer.start();
        TaskqClient client = TaskqClient.connect(own.address());
        TaskqClient unretried = TaskqClient.builder(own.address())
            .retry(CallRetry.DISABLED).batching(BatchSettings.DISABLED).build()) {
      String queue = Fixtures.pullQueue(client, "restart").getName();
      assertEquals(0, own.stop());
      TaskqException lost = assertThrows(TaskqException.class,
          () -> unretried.createTask(queue, payload("lost")));
      assertEquals(Status.Code.UNAVAILABLE, lost.code());

      CompletableFuture<Void> restart = CompletableFuture.runAsync(() -> {
        try {
          Thread.sleep(DOWNTIME.toMillis());
          own.restart();
        } catch (Exception e) {
          throw new IllegalStateException(e);
        }
      });
      Task task = client.createTask(queue, payload("made during the restart")); // batched
      restart.join();
      assertNotNull(task.getName());
      assertEquals(1, client.getQueueStats(queue).getTasksCount(), "exactly the one task created");
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"BatchCreateTasks", "CreateTask", "without retries"})
  void aCreateWhoseAnswerIsLostAfterTheServerMadeItIsRetriedAndAddsOneTask(String mode,
      TaskqServer server) throws Exception {
    try (TaskqClient direct = TaskqClient.connect(server.address());
        FlakyProxy proxy = FlakyProxy.start(server.address(), 1)) {
      Queue queue = direct.createQueue(Queue.newBuilder()
          .setName(Fixtures.queueId("lost")).setType(QueueType.QUEUE_TYPE_PULL).build());
      TaskqClient.Builder builder = TaskqClient.builder(proxy.address());
      if (!mode.equals("BatchCreateTasks")) {
        builder.batching(BatchSettings.DISABLED);
      }
      if (mode.equals("without retries")) {
        builder.retry(CallRetry.DISABLED);
      }
      try (TaskqClient client = builder.build()) {
        if (mode.equals("without retries")) {
          // What the retries recover from: UNAVAILABLE, although the task was created.
          TaskqException error = assertThrows(TaskqException.class,
              () -> client.createTask(queue.getName(), payload("once")));
          assertEquals(Status.Code.UNAVAILABLE, error.code());
          assertDropped(proxy);
          assertEquals(1, direct.listTasks(queue.getName()).count());
          return;
        }
        Task task = client.createTask(queue.getName(), payload("once"));
        assertDropped(proxy);
        // The retry carried the same request_id: the server answered with the task it had made
        // instead of adding a second one.
        assertEquals(List.of(task.getName()),
            direct.listTasks(queue.getName()).map(Task::getName).toList());
      }
    }
  }

  private static void assertDropped(FlakyProxy proxy) throws InterruptedException {
    String line = proxy.nextLine(10);
    assertTrue(line != null && line.startsWith("dropped response on stream"),
        "the proxy said " + line);
  }
}
