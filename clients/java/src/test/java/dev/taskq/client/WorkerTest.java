package dev.taskq.client;

import static dev.taskq.client.Fixtures.eventually;
import static dev.taskq.client.Fixtures.payload;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.taskq.v1.Queue;
import dev.taskq.v1.QueueType;
import dev.taskq.v1.Task;
import dev.taskq.v1.TaskState;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/** The push Worker against a real server. */
@ExtendWith(SharedServer.class)
class WorkerTest {
  private static final Duration WAIT = Duration.ofSeconds(15);

  private TaskqClient client;

  @BeforeEach
  void connect(TaskqServer server) {
    client = TaskqClient.connect(server.address());
  }

  @AfterEach
  void close() {
    client.close();
  }

  @Test
  void pushedTasksAreHandledAndAcked() throws Exception {
    String queue = Fixtures.pushQueue(client, "push").getName();
    for (int i = 0; i < 20; i++) {
      client.createTaskAsync(queue, payload("t" + i));
    }
    client.flush();
    Set<String> payloads = ConcurrentHashMap.newKeySet();
    CountDownLatch handled = new CountDownLatch(20);
    try (Worker worker = Worker.builder(client, queue, task -> {
      payloads.add(task.getPayload().toStringUtf8());
      handled.countDown();
    }).concurrency(4).build().start()) {
      assertTrue(handled.await(WAIT.toSeconds(), TimeUnit.SECONDS));
      eventually(WAIT, "the acks to empty the queue",
          () -> client.getQueueStats(queue).getTasksCount() == 0);
      assertTrue(worker.isRunning());
    }
    assertEquals(20, payloads.size());
  }

  @Test
  void answersMadeTogetherShareStreamMessages(TaskqServer server) throws Exception {
    Fixtures.StreamRecorder stream = new Fixtures.StreamRecorder();
    try (TaskqClient recorded = TaskqClient.builder(server.address()).interceptors(stream).build()) {
      String queue = Fixtures.pushQueue(recorded, "answers").getName();
      recorded.createTasks(queue, IntStream.range(0, 20).mapToObj(i -> payload("t" + i)).toList());
      CountDownLatch together = new CountDownLatch(20);
      try (Worker worker = Worker.builder(recorded, queue, task -> {
        together.countDown();
        together.await(WAIT.toSeconds(), TimeUnit.SECONDS);
        if (task.getPayload().toStringUtf8().equals("t0")) {
          throw new IllegalStateException("one nack among the acks");
        }
      }).concurrency(20).build().start()) {
        eventually(WAIT, "every answer sent", () -> stream.sent.stream()
            .mapToInt(m -> m.getAcksCount() + m.getNacksCount()).sum() == 20);
      }
      assertTrue(stream.sent.get(0).hasSubscription());
      long answerMessages = stream.sent.stream()
          .filter(m -> m.getAcksCount() + m.getNacksCount() > 0).count();
      assertTrue(answerMessages < 10, answerMessages + " messages for 20 answers");
      assertEquals(1, stream.sent.stream().mapToInt(m -> m.getNacksCount()).sum());
    }
  }

  @Test
  void aHandlerExceptionNacksTheTaskWithItsMessage() throws Exception {
    String queue = Fixtures.slowRetryPushQueue(client, "nack").getName();
    Task created = client.createTask(queue, payload("fails"));
    CountDownLatch handled = new CountDownLatch(1);
    try (Worker worker = Worker.builder(client, queue, task -> {
      handled.countDown();
      throw new IllegalStateException("boom");
    }).build().start()) {
      assertTrue(handled.await(WAIT.toSeconds(), TimeUnit.SECONDS));
      eventually(WAIT, "the nack to be recorded",
          () -> client.getTask(created.getName()).getLastAttempt().hasError());
    }
    Task retried = client.getTask(created.getName());
    assertEquals(TaskState.TASK_STATE_SCHEDULED, retried.getState());
    assertEquals(1, retried.getAttemptCount());
    assertEquals(com.google.rpc.Code.UNKNOWN_VALUE, retried.getLastAttempt().getError().getCode());
    assertEquals("IllegalStateException: boom", retried.getLastAttempt().getError().getMessage());
    // Retried after the queue's backoff (a minute at least), not at once.
    assertTrue(ProtoTimes.instant(retried.getScheduleTime())
        .isAfter(Instant.now().plus(Duration.ofSeconds(50))));
  }

  @Test
  void retryAfterChoosesTheRetryDelay() throws Exception {
    String queue = Fixtures.pushQueue(client, "retry-after").getName();
    Task created = client.createTask(queue, payload("later"));
    try (Worker worker = Worker.builder(client, queue, task -> {
      throw new RetryAfter(Duration.ofHours(1), "the mail server said so");
    }).build().start()) {
      eventually(WAIT, "the nack to be recorded",
          () -> client.getTask(created.getName()).getLastAttempt().hasError());
    }
    Task retried = client.getTask(created.getName());
    assertEquals(TaskState.TASK_STATE_SCHEDULED, retried.getState());
    Duration ahead = Duration.between(Instant.now(), ProtoTimes.instant(retried.getScheduleTime()));
    assertTrue(ahead.compareTo(Duration.ofMinutes(59)) > 0, ahead.toString());
    assertEquals("RetryAfter: the mail server said so",
        retried.getLastAttempt().getError().getMessage());
  }

  @Test
  void aPermanentFailureFailsTheTaskWithoutRetrying() throws Exception {
    String queue = Fixtures.pushQueue(client, "permanent").getName();
    Task created = client.createTask(queue, payload("malformed"));
    AtomicInteger attempts = new AtomicInteger();
    try (Worker worker = Worker.builder(client, queue, task -> {
      attempts.incrementAndGet();
      throw new PermanentFailure("bad payload");
    }).build().start()) {
      eventually(WAIT, "the task to fail",
          () -> client.getTask(created.getName()).getState() == TaskState.TASK_STATE_FAILED);
    }
    Task failed = client.getTask(created.getName());
    assertEquals("PermanentFailure: bad payload", failed.getLastAttempt().getError().getMessage());
    assertEquals(1, attempts.get());
  }

  @Test
  void aPermanentFailureMovesTheTaskToTheDeadLetterQueue() throws Exception {
    String deadLetters = Fixtures.pullQueue(client, "dead").getName();
    String queue = client.createQueue(Queue.newBuilder()
        .setName(Fixtures.queueId("with-dlq"))
        .setType(QueueType.QUEUE_TYPE_PUSH)
        .setDeadLetterQueue(deadLetters)
        .build()).getName();
    client.createTask(queue, payload("poison"));
    try (Worker worker = Worker.builder(client, queue, task -> {
      throw new PermanentFailure("cannot parse");
    }).build().start()) {
      eventually(WAIT, "the task to reach the dead-letter queue",
          () -> client.getQueueStats(deadLetters).getTasksCount() == 1);
    }
    assertEquals(0, client.getQueueStats(queue).getTasksCount());
    Task moved = client.listTasks(deadLetters).findFirst().orElseThrow();
    Map<String, String> attributes = moved.getAttributesMap();
    assertEquals(queue, attributes.get("taskq-original-queue"));
    assertTrue(attributes.get("taskq-last-error").contains("cannot parse"), attributes.toString());
    assertEquals("poison", client.getTask(moved.getName()).getPayload().toStringUtf8());
  }

  @Test
  void leasesAreExtendedWhileTheHandlerRuns() throws Exception {
    String queue = Fixtures.pushQueue(client, "extend").getName();
    Task created = client.createTask(queue, payload("slow"));
    CountDownLatch started = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    try (Worker worker = Worker.builder(client, queue, task -> {
      started.countDown();
      release.await(WAIT.toSeconds(), TimeUnit.SECONDS);
    }).extensionInterval(Duration.ofMillis(200)).build().start()) {
      assertTrue(started.await(WAIT.toSeconds(), TimeUnit.SECONDS));
      Instant first = ProtoTimes.instant(client.getTask(created.getName()).getLeaseExpireTime());
      eventually(WAIT, "the lease to be extended", () -> ProtoTimes.instant(
          client.getTask(created.getName()).getLeaseExpireTime()).isAfter(first));
      release.countDown();
      eventually(WAIT, "the ack", () -> client.getQueueStats(queue).getTasksCount() == 0);
    } finally {
      release.countDown();
    }
  }

  @Test
  void stoppingFinishesRunningHandlersAndReleasesTheRest() throws Exception {
    String queue = Fixtures.pushQueue(client, "stop").getName();
    List<Task> tasks = client.createTasks(queue, List.of(payload("a"), payload("b"), payload("c")))
        .stream().map(ItemResult::getOrThrow).toList();
    Set<String> handled = ConcurrentHashMap.newKeySet();
    CountDownLatch started = new CountDownLatch(1);
    Worker worker = Worker.builder(client, queue, task -> {
      started.countDown();
      Thread.sleep(500);
      handled.add(task.getName());
    }).concurrency(1).maxOutstanding(3).build().start();
    assertTrue(started.await(WAIT.toSeconds(), TimeUnit.SECONDS));

    worker.close();

    assertFalse(worker.isRunning());
    assertTrue(worker.termination().isDone());
    assertEquals(1, handled.size(), "only the running handler finished");
    for (Task task : tasks) {
      if (handled.contains(task.getName())) {
        assertThrows(TaskqException.TaskNotFound.class, () -> client.getTask(task.getName()));
      } else {
        // Received but never started: released at once for other workers.
        assertEquals(TaskState.TASK_STATE_READY, client.getTask(task.getName()).getState());
      }
    }
  }

  @Test
  void handlersOutlastingTheGracePeriodAreInterruptedAndTheirTasksReleased() throws Exception {
    String queue = Fixtures.pushQueue(client, "straggler").getName();
    Task created = client.createTask(queue, payload("endless"));
    CountDownLatch started = new CountDownLatch(1);
    CountDownLatch interrupted = new CountDownLatch(1);
    Worker worker = Worker.builder(client, queue, task -> {
      started.countDown();
      try {
        Thread.sleep(WAIT.toMillis());
      } catch (InterruptedException e) {
        interrupted.countDown();
        throw e;
      }
    }).gracePeriod(Duration.ofMillis(200)).build().start();
    assertTrue(started.await(WAIT.toSeconds(), TimeUnit.SECONDS));

    worker.stop();
    assertTrue(worker.awaitTermination(WAIT));
    assertTrue(interrupted.await(WAIT.toSeconds(), TimeUnit.SECONDS));
    Task released = client.getTask(created.getName());
    assertEquals(TaskState.TASK_STATE_READY, released.getState());
    assertEquals(1, released.getAttemptCount());
  }

  @Test
  void aWorkerOnAMissingQueueEndsWithQueueNotFound() throws Exception {
    Worker worker = Worker.builder(client, "no-such-queue", task -> { }).build().start();
    assertThrows(TaskqException.QueueNotFound.class, () -> worker.awaitTermination(WAIT));
    assertFalse(worker.isRunning());

    String pull = Fixtures.pullQueue(client, "not-push").getName();
    Worker wrong = Worker.builder(client, pull, task -> { }).build().start();
    assertThrows(TaskqException.WrongQueueType.class, () -> wrong.awaitTermination(WAIT));
  }

  @Test
  void theWorkerSubscribesAgainAfterTheServerRestarts() throws Exception {
    try (TaskqServer own = TaskqServer.start();
        TaskqClient ownClient = TaskqClient.connect(own.address())) {
      String queue = Fixtures.pushQueue(ownClient, "restart").getName();
      Set<String> handled = ConcurrentHashMap.newKeySet();
      try (Worker worker = Worker.builder(ownClient, queue, task -> handled.add(
          task.getPayload().toStringUtf8()))
          .reconnectBackoff(Duration.ofMillis(50), Duration.ofMillis(500)).build().start()) {
        ownClient.createTask(queue, payload("before"));
        eventually(WAIT, "the first task", () -> handled.contains("before"));

        assertEquals(0, own.stop(), "SIGTERM stops the server cleanly");
        own.restart();

        ownClient.createTask(queue, payload("after"));
        eventually(WAIT, "the task created after the restart", () -> handled.contains("after"));
        assertTrue(worker.isRunning());
      }
    }
  }
}
