package dev.taskq.client;

import static dev.taskq.client.Fixtures.payload;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.taskq.v1.Queue;
import dev.taskq.v1.QueueState;
import dev.taskq.v1.QueueType;
import dev.taskq.v1.RateLimits;
import dev.taskq.v1.Task;
import dev.taskq.v1.TaskState;
import dev.taskq.v1.TaskView;
import io.grpc.Status;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.CompletionException;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/** Queue and task calls, and the errors they raise, against a real server. */
@ExtendWith(SharedServer.class)
class ClientTest {
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
  void queuesAreCreatedReadUpdatedPausedAndDeleted() {
    String id = Fixtures.queueId("admin");
    Queue created = client.createQueue(Queue.newBuilder()
        .setName(id).setType(QueueType.QUEUE_TYPE_PUSH).build());
    assertEquals("queues/" + id, created.getName());
    assertEquals(QueueState.QUEUE_STATE_RUNNING, created.getState());
    assertTrue(created.getRateLimits().getMaxConcurrentDispatches() > 0, "defaults filled in");

    Queue updated = client.updateQueue(Queue.newBuilder()
        .setName(id)
        .setRateLimits(RateLimits.newBuilder().setMaxDispatchesPerSecond(5))
        .build(), "rate_limits.max_dispatches_per_second");
    assertEquals(5.0, updated.getRateLimits().getMaxDispatchesPerSecond());

    assertEquals(QueueState.QUEUE_STATE_PAUSED, client.pauseQueue(id).getState());
    assertEquals(QueueState.QUEUE_STATE_RUNNING, client.resumeQueue("queues/" + id).getState());
    assertTrue(client.listQueues().anyMatch(queue -> queue.getName().equals("queues/" + id)));

    client.deleteQueue(id);
    TaskqException.QueueNotFound gone =
        assertThrows(TaskqException.QueueNotFound.class, () -> client.getQueue(id));
    assertEquals(Status.Code.NOT_FOUND, gone.code());
    assertEquals("QUEUE_NOT_FOUND", gone.reason());
    assertEquals(TaskqException.DOMAIN, gone.domain());
    assertTrue(gone.getMessage().startsWith("NOT_FOUND QUEUE_NOT_FOUND: "), gone.getMessage());
  }

  @Test
  void creatingAQueueTwiceFailsWithQueueAlreadyExists() {
    Queue queue = Fixtures.pullQueue(client, "twice");
    TaskqException error = assertThrows(TaskqException.class, () -> client.createQueue(queue));
    assertInstanceOf(TaskqException.QueueAlreadyExists.class, error);
    assertEquals(Status.Code.ALREADY_EXISTS, error.code());
  }

  @Test
  void invalidArgumentsNameTheirFields() {
    String queue = Fixtures.pullQueue(client, "invalid").getName();
    Task tooLongTag = Task.newBuilder().setTag("x".repeat(501)).build();
    TaskqException error =
        assertThrows(TaskqException.class, () -> client.createTask(queue, tooLongTag));
    assertEquals(Status.Code.INVALID_ARGUMENT, error.code());
    assertEquals("task.tag", error.fieldViolations().get(0).field(), error.toString());
    assertTrue(error.status().isPresent());
  }

  @Test
  void leasingFromAPushQueueFailsWithWrongQueueType() {
    String queue = Fixtures.pushQueue(client, "wrong-type").getName();
    TaskqException.WrongQueueType error = assertThrows(TaskqException.WrongQueueType.class,
        () -> client.leaseTasks(queue, LeaseOptions.of(Duration.ofSeconds(10), 1)));
    assertEquals(Status.Code.FAILED_PRECONDITION, error.code());
    assertFalse(error.preconditionViolations().isEmpty());
  }

  @Test
  void asyncCallsCompleteWithTypedErrors() {
    CompletionException error = assertThrows(CompletionException.class,
        () -> client.getTaskAsync("queues/no-such-queue/tasks/t1").join());
    TaskqException cause = TaskqException.from(error);
    assertEquals(Status.Code.NOT_FOUND, cause.code());
    assertTrue(cause instanceof TaskqException.QueueNotFound
        || cause instanceof TaskqException.TaskNotFound, cause.toString());
  }

  @Test
  void tasksAreListedPageByPageWithFilters() {
    String queue = Fixtures.pullQueue(client, "list").getName();
    List<Task> tasks = IntStream.range(0, 25)
        .mapToObj(i -> payload("t" + i).toBuilder().setTag(i % 2 == 0 ? "even" : "odd").build())
        .toList();
    assertTrue(client.createTasks(queue, tasks).stream().allMatch(ItemResult::isOk));

    assertEquals(25, client.listTasks(dev.taskq.v1.ListTasksRequest.newBuilder()
        .setParent(queue).setPageSize(4).build()).count());
    List<Task> even = client.listTasks(queue, "state = READY AND tag = \"even\"").toList();
    assertEquals(13, even.size());
    assertTrue(even.stream().allMatch(task -> task.getPayload().isEmpty()), "basic view");
  }

  @Test
  void aScheduledTaskIsRunNowAndReadInFull() {
    String queue = Fixtures.pullQueue(client, "run").getName();
    Task later = client.createTask(queue, payload("later").toBuilder()
        .setName("report-1")
        .setScheduleTime(ProtoTimes.timestamp(Instant.now().plus(Duration.ofHours(1))))
        .build());
    assertEquals(queue + "/tasks/report-1", later.getName());
    assertEquals(TaskState.TASK_STATE_SCHEDULED, later.getState());

    assertEquals(TaskState.TASK_STATE_READY, client.runTask(later.getName()).getState());
    Task full = client.getTask(later.getName());
    assertEquals("later", full.getPayload().toStringUtf8());
    assertTrue(client.getTask(later.getName(), TaskView.TASK_VIEW_BASIC).getPayload().isEmpty());

    assertThrows(TaskqException.TaskAlreadyExists.class,
        () -> client.createTask(queue, Task.newBuilder().setName("report-1").build()));
    client.deleteTask(later.getName());
    assertThrows(TaskqException.TaskTombstoned.class,
        () -> client.createTask(queue, Task.newBuilder().setName("report-1").build()));
  }

  @Test
  void queueStatsAndPurge() {
    String queue = Fixtures.pullQueue(client, "stats").getName();
    client.createTasks(queue, List.of(payload("a"), payload("b"), payload("c")));
    assertEquals(3, client.getQueueStats(queue).getReadyCount());
    assertEquals(3, client.purgeQueue(queue).getPurgedCount());
    assertEquals(0, client.getQueueStats(queue).getTasksCount());
  }
}
