package dev.taskq.client;

import io.grpc.Status;
import java.time.Duration;
import java.util.Optional;
import java.util.function.DoubleSupplier;
import java.util.function.LongSupplier;

/** The waits between the attempts of one call, as {@link CallRetry} describes them. */
final class RetryBackoff {
  /** {@link #nextWaitNanos}'s answer when the error is to be thrown. */
  static final long GIVE_UP = -1;

  private final CallRetry policy;
  /** The call's deadline on {@code clock}, or null for none. */
  private final Long deadlineNanos;
  private final LongSupplier clock;
  private final DoubleSupplier random;
  private long ceilingNanos;
  /** Set at the first failure. */
  private Long giveUpAtNanos;

  RetryBackoff(CallRetry policy, Long deadlineNanos, LongSupplier clock, DoubleSupplier random) {
    this.policy = policy;
    this.deadlineNanos = deadlineNanos;
    this.clock = clock;
    this.random = random;
    this.ceilingNanos = policy.initialBackoff().toNanos();
  }

  /**
   * Whether an attempt that failed with {@code code} is made again: on UNAVAILABLE, and on a
   * CANCELLED the caller did not cause (a server stopping gracefully cancels the calls it has
   * not yet handled). {@code cancelledByCaller}: the caller's {@link io.grpc.Context} was
   * cancelled, its thread interrupted, or its future cancelled.
   */
  static boolean retried(Status.Code code, boolean cancelledByCaller) {
    return code == Status.Code.UNAVAILABLE
        || (code == Status.Code.CANCELLED && !cancelledByCaller);
  }

  /**
   * Nanoseconds to wait before the next attempt after {@code error}; {@link #GIVE_UP} when it is
   * not retried or no attempt fits in the budget any more: then throw it. {@code
   * cancelledByCaller} says that the caller cancelled the call: a CANCELLED is then not retried.
   */
  long nextWaitNanos(TaskqException error, boolean cancelledByCaller) {
    if (!retried(error.code(), cancelledByCaller) || !policy.isEnabled()) {
      return GIVE_UP;
    }
    long now = clock.getAsLong();
    if (giveUpAtNanos == null) {
      long giveUpAt = now + policy.budget().toNanos();
      giveUpAtNanos = deadlineNanos == null ? giveUpAt : Math.min(giveUpAt, deadlineNanos);
    }
    long wait = (long) (random.getAsDouble() * ceilingNanos);
    ceilingNanos = Math.min(
        ceilingNanos * CallRetry.BACKOFF_MULTIPLIER, policy.maxBackoff().toNanos());
    Optional<Duration> asked = error.retryDelay();
    if (asked.isPresent()) {
      wait = Math.max(wait, asked.get().toNanos());
    }
    // An attempt that could only start at the deadline would fail with DEADLINE_EXCEEDED and
    // hide the UNAVAILABLE (or CANCELLED) that says what is wrong.
    return now + wait >= giveUpAtNanos ? GIVE_UP : wait;
  }
}
