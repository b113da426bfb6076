package dev.taskq.client;

import dev.taskq.v1.BatchCreateTasksRequest;
import dev.taskq.v1.CreateTaskRequest;
import dev.taskq.v1.PurgeQueueRequest;
import java.time.Duration;
import java.util.Objects;

/**
 * How a client retries unary calls that fail with UNAVAILABLE: the server could not be reached,
 * is starting, or is stopping, as it does for a few seconds when it restarts.
 *
 * <p>Every unary call of a {@link TaskqClient} is made again, after a wait, until it gets
 * another answer or the retry budget is spent:
 *
 * <ul>
 *   <li>waits are exponential with full jitter: a random time between 0 and a ceiling that
 *       starts at {@code initialBackoff} and doubles up to {@code maxBackoff}, so that many
 *       clients coming back after a restart spread out; a {@code RetryInfo} the server sends (1 s
 *       while it starts) is honoured: the wait is at least that long;
 *   <li>a call stops retrying {@code budget} (default 15 s) after its first UNAVAILABLE (or
 *       CANCELLED the caller did not cause, see below), and never waits past its own deadline
 *       ({@link TaskqClient.Builder#timeout}), which covers every attempt; the last UNAVAILABLE
 *       is thrown then;
 *   <li>every attempt sends the same request message, so a create carries the same
 *       {@code request_id} on every attempt: it is chosen once, when the request is completed,
 *       before the first one.
 * </ul>
 *
 * <p>A CANCELLED the caller did not cause is retried exactly like UNAVAILABLE: a server that
 * stops gracefully cancels the calls it has received but not yet handed to its application, so
 * a restart shows it too. The caller's own cancellation is not retried: it cancelled the call's
 * {@link io.grpc.Context}, interrupted the thread of a sync call, or cancelled the future of an
 * async one.
 *
 * <p>Only these are retried. DEADLINE_EXCEEDED is not: the deadline covers all attempts,
 * so once an attempt hits it the call has no time left. StreamTasks is not retried: the
 * {@link Worker} subscribes again on its own.
 *
 * <p>Why this and not gRPC's retry policy (a service config), which the client used before:
 * gRPC caps a call at 5 attempts, so with jitter the budget was often under a second or two,
 * shorter than a restart; its retry throttling switches retries off after a burst of failures,
 * which is exactly what a restart produces; it never resends a call once response headers have
 * arrived, even when the connection breaks before the answer; and it ignores RetryInfo. The
 * channel keeps only gRPC's transparent retries, of requests that never reached the server,
 * which are always safe.
 *
 * <p>An attempt that failed with UNAVAILABLE may still have reached the server, which may have
 * done the work and lost only the answer. Each call is safe to resend:
 *
 * <ul>
 *   <li>creates ({@code CreateTask}, each item of {@code BatchCreateTasks}) carry a request id,
 *       so the server answers a repeat with the task the first attempt created; the client
 *       gives every create one, so only a request made on the raw channel can lack it, and such
 *       a create is not retried;
 *   <li>reads ({@code Get*}, {@code List*}, {@code GetQueueStats}) change nothing;
 *   <li>{@code DeleteTask} / {@code BatchDeleteTasks} with a lease token (acknowledgements): the
 *       server answers a repeated acknowledgement with the same token as it answered the first
 *       (a server without that fix answers LEASE_LOST, though the task was acknowledged); a
 *       delete without a token that was done the first time answers TASK_NOT_FOUND;
 *   <li>{@code ModifyLease} sets the lease to end a duration from now: a repeat sets it again (a
 *       release repeated answers LEASE_LOST, the task having been released once);
 *   <li>{@code LeaseTasks}: tasks leased by an attempt whose answer was lost are held by nobody
 *       until their lease expires; then they are ready again (the attempt counts);
 *   <li>{@code RunTask}, {@code UpdateQueue}, {@code PauseQueue} and {@code ResumeQueue} set a
 *       state: repeating sets it again; {@code CreateQueue} and {@code DeleteQueue} repeated
 *       answer QUEUE_ALREADY_EXISTS / QUEUE_NOT_FOUND;
 *   <li>{@code PurgeQueue} is NOT retried: a second purge would also delete the tasks created
 *       since the first one.
 * </ul>
 *
 * @param budget how long a call keeps retrying after its first UNAVAILABLE; its deadline stops
 *     it sooner; zero turns retries off
 * @param initialBackoff the ceiling of the first wait; each wait is a random time between 0
 *     and its ceiling
 * @param maxBackoff the largest ceiling a wait grows to, doubling from {@code initialBackoff}
 */
public record CallRetry(Duration budget, Duration initialBackoff, Duration maxBackoff) {

  /** Each wait's ceiling is this many times the previous one. */
  static final int BACKOFF_MULTIPLIER = 2;

  /** For up to 15 s, waiting up to 100 ms, 200 ms, ... 2 s between attempts. */
  public static final CallRetry DEFAULT =
      new CallRetry(Duration.ofSeconds(15), Duration.ofMillis(100), Duration.ofSeconds(2));

  /** No retries: a call failing with UNAVAILABLE throws it at once. */
  public static final CallRetry DISABLED = DEFAULT.withBudget(Duration.ZERO);

  public CallRetry {
    Objects.requireNonNull(budget, "budget");
    Objects.requireNonNull(initialBackoff, "initialBackoff");
    Objects.requireNonNull(maxBackoff, "maxBackoff");
    if (budget.isNegative()) {
      throw new IllegalArgumentException("budget cannot be negative: " + budget);
    }
    if (initialBackoff.isNegative() || initialBackoff.isZero()
        || maxBackoff.compareTo(initialBackoff) < 0) {
      throw new IllegalArgumentException("initialBackoff must be positive and at most "
          + "maxBackoff, not " + initialBackoff + " and " + maxBackoff);
    }
  }

  /** Whether calls are retried at all. */
  public boolean isEnabled() {
    return !budget.isZero();
  }

  public CallRetry withBudget(Duration budget) {
    return new CallRetry(budget, initialBackoff, maxBackoff);
  }

  public CallRetry withInitialBackoff(Duration initialBackoff) {
    return new CallRetry(budget, initialBackoff, maxBackoff);
  }

  public CallRetry withMaxBackoff(Duration maxBackoff) {
    return new CallRetry(budget, initialBackoff, maxBackoff);
  }

  /** Whether a request may be sent again after an attempt that may have reached the server. */
  static boolean mayResend(Object request) {
    if (request instanceof CreateTaskRequest create) {
      return !create.getRequestId().isEmpty();
    }
    if (request instanceof BatchCreateTasksRequest batch) {
      return batch.getRequestsList().stream().noneMatch(item -> item.getRequestId().isEmpty());
    }
    return !(request instanceof PurgeQueueRequest);
  }
}
