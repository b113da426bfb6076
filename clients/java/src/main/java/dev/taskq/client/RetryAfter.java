package dev.taskq.client;

import java.time.Duration;
import java.util.Objects;

/**
 * Thrown by a {@link TaskHandler} to have the task tried again after {@link #delay()} instead
 * of after the queue's backoff (a rate-limited downstream that said when to come back). The
 * attempt still counts against the queue's {@code max_attempts}.
 */
public class RetryAfter extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final Duration delay;

  /** Retry after {@code delay} (at most 30 days on push queues). */
  public RetryAfter(Duration delay) {
    this(delay, "retry in " + delay);
  }

  public RetryAfter(Duration delay, String message) {
    super(message);
    this.delay = Objects.requireNonNull(delay, "delay");
    if (delay.isNegative()) {
      throw new IllegalArgumentException("a retry delay cannot be negative: " + delay);
    }
  }

  public Duration delay() {
    return delay;
  }
}
