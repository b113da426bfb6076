package dev.taskq.client;

import static dev.taskq.client.Fixtures.eventually;
import static dev.taskq.client.Fixtures.payload;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.taskq.client.Fixtures.CallCounter;
import dev.taskq.v1.Task;
import dev.taskq.v1.TaskState;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/** The pull loop helper against a real server. */
@ExtendWith(SharedServer.class)
class PullWorkerTest {
  private static final Duration WAIT = Duration.ofSeconds(15);

  private final CallCounter calls = new CallCounter();
  private TaskqClient client;
  private String queue;

  @BeforeEach
  void connect(TaskqServer server) {
    client = TaskqClient.builder(server.address()).interceptors(calls).build();
    queue = Fixtures.pullQueue(client, "pull-worker").getName();
  }

  @AfterEach
  void close() {
    client.close();
  }

  private PullWorker.Builder worker(TaskHandler handler) {
    return PullWorker.builder(client, queue, handler).pollWait(Duration.ofMillis(500));
  }

  @Test
  void tasksAreLeasedHandledAndDeletedInBatches() throws Exception {
    for (int i = 0; i < 30; i++) {
      client.createTaskAsync(queue, payload("t" + i));
    }
    client.flush();
    Set<String> handled = ConcurrentHashMap.newKeySet();
    try (PullWorker worker = worker(task -> handled.add(task.getPayload().toStringUtf8()))
        .concurrency(8).batchSize(10).build().start()) {
      eventually(WAIT, "every task done and deleted",
          () -> client.getQueueStats(queue).getTasksCount() == 0);
    }
    assertEquals(30, handled.size());
    assertEquals(0, calls.count("DeleteTask"));
    int batches = calls.count("BatchDeleteTasks");
    assertTrue(batches > 0 && batches < 30, batches + " BatchDeleteTasks calls for 30 tasks");
  }

  @Test
  void aFailingHandlerReleasesItsTaskForTheNextLease() throws Exception {
    client.createTask(queue, payload("flaky"));
    List<Integer> attempts = new CopyOnWriteArrayList<>();
    try (PullWorker worker = worker(task -> {
      attempts.add(task.getAttemptCount());
      if (task.getAttemptCount() == 1) {
        throw new IllegalStateException("first time fails");
      }
    }).build().start()) {
      eventually(WAIT, "the second attempt to succeed",
          () -> client.getQueueStats(queue).getTasksCount() == 0);
    }
    assertEquals(List.of(1, 2), attempts);
  }

  @Test
  void retryAfterKeepsTheTaskLeasedUntilThen() throws Exception {
    Task created = client.createTask(queue, payload("later"));
    CountDownLatch handled = new CountDownLatch(1);
    try (PullWorker worker = worker(task -> {
      handled.countDown();
      throw new RetryAfter(Duration.ofHours(1));
    }).build().start()) {
      assertTrue(handled.await(WAIT.toSeconds(), TimeUnit.SECONDS));
      eventually(WAIT, "the lease to be set an hour ahead", () -> {
        Task task = client.getTask(created.getName());
        return ProtoTimes.instant(task.getLeaseExpireTime())
            .isAfter(Instant.now().plus(Duration.ofMinutes(59)));
      });
    }
    assertEquals(TaskState.TASK_STATE_LEASED, client.getTask(created.getName()).getState());
  }

  @Test
  void aShortLeaseIsExtendedWhileTheHandlerRuns() throws Exception {
    client.createTask(queue, payload("slow"));
    List<Integer> attempts = new CopyOnWriteArrayList<>();
    try (PullWorker worker = worker(task -> {
      attempts.add(task.getAttemptCount());
      Thread.sleep(3000);
    }).leaseDuration(Duration.ofSeconds(2)).build().start()) {
      eventually(WAIT, "the task deleted", () -> client.getQueueStats(queue).getTasksCount() == 0);
    }
    // Without extensions (every second: half the lease) the lease would have expired after
    // 2 s, the delete failed with LEASE_LOST and the task run again.
    assertEquals(List.of(1), attempts);
  }

  @Test
  void stoppingFinishesRunningHandlersAndReleasesStragglers() throws Exception {
    Task quick = client.createTask(queue, payload("quick"));
    CountDownLatch started = new CountDownLatch(1);
    PullWorker worker = worker(task -> {
      started.countDown();
      Thread.sleep(300);
    }).concurrency(1).build().start();
    assertTrue(started.await(WAIT.toSeconds(), TimeUnit.SECONDS));
    Task endless = client.createTask(queue, payload("endless"));
    worker.close();
    assertFalse(worker.isRunning());
    assertThrows(TaskqException.TaskNotFound.class, () -> client.getTask(quick.getName()));
    assertEquals(TaskState.TASK_STATE_READY, client.getTask(endless.getName()).getState());

    CountDownLatch running = new CountDownLatch(1);
    PullWorker stuck = worker(task -> {
      running.countDown();
      Thread.sleep(WAIT.toMillis());
    }).gracePeriod(Duration.ofMillis(200)).build().start();
    assertTrue(running.await(WAIT.toSeconds(), TimeUnit.SECONDS));
    stuck.stop();
    assertTrue(stuck.awaitTermination(WAIT));
    Task released = client.getTask(endless.getName());
    assertEquals(TaskState.TASK_STATE_READY, released.getState());
    assertEquals(1, released.getAttemptCount());
  }

  @Test
  void aPullWorkerOnAPushQueueEndsWithWrongQueueType() throws Exception {
    String push = Fixtures.pushQueue(client, "not-pull").getName();
    PullWorker worker = PullWorker.builder(client, push, task -> { }).build().start();
    assertThrows(TaskqException.WrongQueueType.class, () -> worker.awaitTermination(WAIT));
  }
}
