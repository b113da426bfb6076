package dev.taskq.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.Any;
import com.google.rpc.RetryInfo;
import dev.taskq.v1.BatchCreateTasksRequest;
import dev.taskq.v1.CreateTaskRequest;
import dev.taskq.v1.DeleteTaskRequest;
import dev.taskq.v1.PurgeQueueRequest;
import io.grpc.Status;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The waits between attempts, and which requests may be resent: pure, on a fake clock. */
class RetryBackoffTest {
  private long now = 1_000_000_000L;

  private static TaskqException unavailable(Duration retryDelay) {
    com.google.rpc.Status.Builder status = com.google.rpc.Status.newBuilder()
        .setCode(Status.Code.UNAVAILABLE.value()).setMessage("down");
    if (retryDelay != null) {
      status.addDetails(Any.pack(RetryInfo.newBuilder()
          .setRetryDelay(ProtoTimes.duration(retryDelay)).build()));
    }
    return TaskqException.fromStatus(status.build());
  }

  @Test
  void waitsGrowWithFullJitterUntilTheBudgetIsSpent() {
    CallRetry policy =
        new CallRetry(Duration.ofSeconds(5), Duration.ofMillis(100), Duration.ofSeconds(1));
    RetryBackoff backoff = new RetryBackoff(policy, null, () -> now, () -> 1.0);
    List<Long> waits = new ArrayList<>();
    long wait;
    while ((wait = backoff.nextWaitNanos(unavailable(null), false)) != RetryBackoff.GIVE_UP) {
      waits.add(wait / 1_000_000);
      now += wait;
    }
    // Ceilings double from 100 ms up to 1 s, until a wait would end past the 5 s budget.
    assertEquals(List.of(100L, 200L, 400L, 800L, 1000L, 1000L, 1000L), waits);
    RetryBackoff low = new RetryBackoff(policy, null, () -> now, () -> 0.0);
    assertEquals(0, low.nextWaitNanos(unavailable(null), false), "full jitter: anywhere from 0 up");
  }

  @Test
  void retryInfoIsHonouredAndTheDeadlineIsNotPassed() {
    RetryBackoff backoff =
        new RetryBackoff(CallRetry.DEFAULT, now + 2_500_000_000L, () -> now, () -> 0.0);
    for (int i = 0; i < 2; i++) {
      long wait = backoff.nextWaitNanos(unavailable(Duration.ofSeconds(1)), false);
      assertEquals(1_000_000_000L, wait, "the server's 1 s");
      now += wait;
    }
    assertEquals(RetryBackoff.GIVE_UP, backoff.nextWaitNanos(unavailable(Duration.ofSeconds(1)), false));
  }

  @Test
  void otherCodesAndDisabledRetriesGiveUpAtOnce() {
    TaskqException invalid = TaskqException.fromStatus(com.google.rpc.Status.newBuilder()
        .setCode(Status.Code.INVALID_ARGUMENT.value()).setMessage("bad").build());
    assertEquals(RetryBackoff.GIVE_UP,
        new RetryBackoff(CallRetry.DEFAULT, null, () -> now, () -> 0.5).nextWaitNanos(invalid, false));
    RetryBackoff disabled = new RetryBackoff(CallRetry.DISABLED, null, () -> now, () -> 0.5);
    assertEquals(RetryBackoff.GIVE_UP, disabled.nextWaitNanos(unavailable(null), false));
  }

  @Test
  void aCancelledTheCallerDidNotCauseIsRetriedLikeUnavailable() {
    // A server stopping gracefully cancels the calls it has not yet handed to its application.
    TaskqException cancelled = TaskqException.fromStatus(com.google.rpc.Status.newBuilder()
        .setCode(Status.Code.CANCELLED.value()).setMessage("server shutting down").build());
    RetryBackoff backoff = new RetryBackoff(CallRetry.DEFAULT, null, () -> now, () -> 1.0);
    assertEquals(100_000_000L, backoff.nextWaitNanos(cancelled, false), "retried after 100 ms");
    // The caller's own cancellation (its Context, thread or future) is not retried.
    RetryBackoff callerCancelled = new RetryBackoff(CallRetry.DEFAULT, null, () -> now, () -> 1.0);
    assertEquals(RetryBackoff.GIVE_UP, callerCancelled.nextWaitNanos(cancelled, true));
    assertTrue(RetryBackoff.retried(Status.Code.UNAVAILABLE, true));
    assertFalse(RetryBackoff.retried(Status.Code.DEADLINE_EXCEEDED, false));
  }

  @Test
  void createsAreResentOnlyWithARequestIdAndPurgesNever() {
    CreateTaskRequest create =
        CreateTaskRequest.newBuilder().setParent("queues/q").setRequestId("r1").build();
    assertTrue(CallRetry.mayResend(create));
    assertFalse(CallRetry.mayResend(create.toBuilder().clearRequestId().build()));
    BatchCreateTasksRequest batch =
        BatchCreateTasksRequest.newBuilder().addRequests(create).build();
    assertTrue(CallRetry.mayResend(batch));
    assertFalse(CallRetry.mayResend(
        batch.toBuilder().addRequests(CreateTaskRequest.getDefaultInstance()).build()));
    assertFalse(CallRetry.mayResend(PurgeQueueRequest.newBuilder().setName("queues/q").build()));
    assertTrue(CallRetry.mayResend(
        DeleteTaskRequest.newBuilder().setName("queues/q/tasks/t").setLeaseToken("x").build()));
  }
}
