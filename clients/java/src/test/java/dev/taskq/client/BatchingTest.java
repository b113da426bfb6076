package dev.taskq.client;

import static dev.taskq.client.Fixtures.payload;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.taskq.client.Fixtures.CallCounter;
import dev.taskq.v1.CreateTaskRequest;
import dev.taskq.v1.Task;
import io.grpc.Status;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/** Creates made close together share BatchCreateTasks calls; each caller gets its own result. */
@ExtendWith(SharedServer.class)
class BatchingTest {

  @Test
  void concurrentCreatesAreCoalescedWithPerCallerErrors(TaskqServer server) throws Exception {
    CallCounter calls = new CallCounter();
    try (TaskqClient client = TaskqClient.builder(server.address())
        .interceptors(calls)
        .batching(BatchSettings.DEFAULT.withMaxDelay(Duration.ofMillis(200)))
        .build()) {
      String queue = Fixtures.pullQueue(client, "batch").getName();
      client.createTask(queue, Task.newBuilder().setName("taken").build());
      int before = calls.count("BatchCreateTasks");

      List<CompletableFuture<Task>> creates = new ArrayList<>();
      for (int i = 0; i < 100; i++) {
        creates.add(client.createTaskAsync(queue, payload("t" + i)));
      }
      CompletableFuture<Task> duplicate =
          client.createTaskAsync(queue, Task.newBuilder().setName("taken").build());
      CompletableFuture<Task> invalid =
          client.createTaskAsync(queue, Task.newBuilder().setTag("x".repeat(501)).build());

      Set<String> names = new HashSet<>();
      for (CompletableFuture<Task> create : creates) {
        names.add(create.get().getName());
      }
      assertEquals(100, names.size());
      ExecutionException exists = assertThrows(ExecutionException.class, duplicate::get);
      assertInstanceOf(TaskqException.TaskAlreadyExists.class, exists.getCause());
      TaskqException bad = TaskqException.from(assertThrows(ExecutionException.class, invalid::get));
      assertEquals(Status.Code.INVALID_ARGUMENT, bad.code());
      // Named as in the caller's own CreateTaskRequest, not as item 101 of the batch.
      assertEquals("task.tag", bad.fieldViolations().get(0).field());
      assertFalse(bad.getMessage().contains("requests["), bad.getMessage());

      assertEquals(1, calls.count("BatchCreateTasks") - before, "one batch for 102 creates");
      assertEquals(0, calls.count("CreateTask"));
      assertEquals(101, client.getQueueStats(queue).getTasksCount());
    }
  }

  @Test
  void syncCreatesFromManyThreadsShareBatches(TaskqServer server) throws Exception {
    CallCounter calls = new CallCounter();
    ExecutorService threads = Executors.newFixedThreadPool(16);
    try (TaskqClient client = TaskqClient.builder(server.address()).interceptors(calls).build()) {
      String queue = Fixtures.pullQueue(client, "threads").getName();
      List<Future<Task>> creates = new ArrayList<>();
      for (int i = 0; i < 200; i++) {
        Task task = payload("t" + i);
        creates.add(threads.submit(() -> client.createTask(queue, task)));
      }
      for (Future<Task> create : creates) {
        create.get();
      }
      int batches = calls.count("BatchCreateTasks");
      assertTrue(batches < 200, batches + " batches for 200 creates");
      assertEquals(200, client.getQueueStats(queue).getTasksCount());
    } finally {
      threads.shutdownNow();
    }
  }

  @Test
  void disabledBatchingSendsEachCreateOnItsOwn(TaskqServer server) {
    CallCounter calls = new CallCounter();
    try (TaskqClient client = TaskqClient.builder(server.address())
        .interceptors(calls).batching(BatchSettings.DISABLED).build()) {
      String queue = Fixtures.pullQueue(client, "unbatched").getName();
      List<CompletableFuture<Task>> creates = new ArrayList<>();
      for (int i = 0; i < 5; i++) {
        creates.add(client.createTaskAsync(queue, payload("t" + i)));
      }
      creates.forEach(CompletableFuture::join);
      assertEquals(5, calls.count("CreateTask"));
      assertEquals(0, calls.count("BatchCreateTasks"));
    }
  }

  @Test
  void aRepeatedRequestIdAddsNoSecondTask(TaskqServer server) {
    try (TaskqClient client = TaskqClient.connect(server.address())) {
      String queue = Fixtures.pullQueue(client, "idempotent").getName();
      CreateTaskRequest request = CreateTaskRequest.newBuilder()
          .setParent(queue).setTask(payload("once")).setRequestId("retry-1").build();
      Task first = client.createTask(request);
      Task second = client.createTask(request);
      assertEquals(first.getName(), second.getName());
      assertEquals(1, client.getQueueStats(queue).getTasksCount());
    }
  }

  @Test
  void aBatchOfCreatesAnswersPerItem(TaskqServer server) {
    try (TaskqClient client = TaskqClient.connect(server.address())) {
      String queue = Fixtures.pullQueue(client, "explicit").getName();
      List<ItemResult<Task>> results = client.createTasks(queue, List.of(
          Task.newBuilder().setName("a").build(),
          Task.newBuilder().setName("a").build(),
          payload("b")));
      assertTrue(results.get(0).isOk());
      assertInstanceOf(TaskqException.TaskAlreadyExists.class, results.get(1).error());
      assertEquals(queue + "/tasks/a", results.get(0).getOrThrow().getName());
      assertTrue(results.get(2).isOk());
      assertThrows(TaskqException.TaskAlreadyExists.class, () -> results.get(1).getOrThrow());
    }
  }
}
