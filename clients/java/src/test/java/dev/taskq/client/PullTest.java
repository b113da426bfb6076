package dev.taskq.client;

import static dev.taskq.client.Fixtures.payload;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.taskq.v1.Task;
import dev.taskq.v1.TaskState;
import io.grpc.Status;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/** Pull queues through the client: lease by tag, acknowledge, extend, release, lose. */
@ExtendWith(SharedServer.class)
class PullTest {
  private static final Duration MINUTE = Duration.ofMinutes(1);

  private TaskqClient client;
  private String queue;

  @BeforeEach
  void connect(TaskqServer server) {
    client = TaskqClient.connect(server.address());
    queue = Fixtures.pullQueue(client, "pull").getName();
  }

  @AfterEach
  void close() {
    client.close();
  }

  @Test
  void tasksCreatedWithTagsAreLeasedByTagAndDeleted() {
    for (String tag : List.of("q3", "q4", "q3", "q4", "q3")) {
      client.createTask(queue, payload("report").toBuilder().setTag(tag).build());
    }

    List<Task> q4 = client.leaseTasks(queue, LeaseOptions.of(MINUTE, 10).withTag("q4"));
    assertEquals(2, q4.size());
    for (Task task : q4) {
      assertEquals("q4", task.getTag());
      assertEquals(TaskState.TASK_STATE_LEASED, task.getState());
      assertFalse(task.getLeaseToken().isEmpty());
      assertEquals("report", task.getPayload().toStringUtf8());
      client.ack(task);
    }

    assertEquals(3, client.getQueueStats(queue).getTasksCount());
    assertTrue(client.leaseTasks(queue, LeaseOptions.of(MINUTE, 10).withTag("q4")).isEmpty());
    List<Task> oldest = client.leaseTasks(queue, LeaseOptions.of(MINUTE, 10).withOldestTag());
    assertEquals(Set.of("q3"), oldest.stream().map(Task::getTag).collect(Collectors.toSet()));
    assertEquals(3, oldest.size());
  }

  @Test
  void aStaleLeaseTokenThrowsLeaseLost() {
    client.createTask(queue, payload("once"));
    Task leased = client.leaseTasks(queue, LeaseOptions.of(MINUTE, 1)).get(0);
    Task released = client.releaseLease(leased);
    assertEquals(TaskState.TASK_STATE_READY, released.getState());

    TaskqException.LeaseLost lost =
        assertThrows(TaskqException.LeaseLost.class, () -> client.ack(leased));
    assertEquals(Status.Code.FAILED_PRECONDITION, lost.code());
    assertEquals("LEASE_LOST", lost.reason());
    assertThrows(TaskqException.LeaseLost.class,
        () -> client.modifyLease(leased, Duration.ofSeconds(30)));

    // The task is still there for the next worker, with both attempts counted.
    Task again = client.leaseTasks(queue, LeaseOptions.of(MINUTE, 1)).get(0);
    assertEquals(2, again.getAttemptCount());
    client.ack(again);
  }

  @Test
  void aLeaseIsExtendedFromNow() {
    client.createTask(queue, payload("long"));
    Task leased = client.leaseTasks(queue, LeaseOptions.of(Duration.ofSeconds(30), 1)).get(0);
    Task extended = client.modifyLease(leased, Duration.ofMinutes(10));
    Instant expiry = ProtoTimes.instant(extended.getLeaseExpireTime());
    assertTrue(expiry.isAfter(Instant.now().plus(Duration.ofMinutes(9))), expiry.toString());
    assertEquals(leased.getLeaseToken(), extended.getLeaseToken(), "extending keeps the token");
    client.ack(leased);
  }

  @Test
  void aWaitingLeaseReturnsAsSoonAsATaskIsReady() throws Exception {
    CompletableFuture<List<Task>> waiting =
        client.leaseTasksAsync(queue, LeaseOptions.of(MINUTE, 5).withMaxWait(Duration.ofSeconds(20)));
    Thread.sleep(200);
    assertFalse(waiting.isDone());
    Instant created = Instant.now();
    client.createTask(queue, payload("late"));
    List<Task> leased = waiting.get();
    assertEquals(1, leased.size());
    assertTrue(Duration.between(created, Instant.now()).compareTo(Duration.ofSeconds(5)) < 0);
  }
}
