package dev.taskq.client;

import dev.taskq.v1.Task;
import java.time.Duration;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

/**
 * A task a worker holds, and the extensions of its lease.
 *
 * <p>A task reaches a worker leased for some time (a push queue's dispatch deadline, a pull
 * worker's lease duration). While the worker holds it, it asks for the same length again
 * every {@code interval}, by default half of it, so that a late extension still leaves half a
 * lease of margin for a slow network or a busy machine. The length comes from the server's own
 * timestamps (expiry minus dispatch time), so clock skew between the machines does not matter.
 */
final class HeldLease {
  /** A lease whose task says nothing of its length: the shortest dispatch deadline. */
  static final Duration FALLBACK_LENGTH = Duration.ofSeconds(15);

  final Task task;
  /** The push stream the task came on; null for pull leases. */
  final PushSession session;
  /** What each extension asks for. */
  final Duration length;
  final Duration interval;
  /** Set once the server refused the lease: no more extensions, no answer worth sending. */
  volatile boolean lost;
  /** Set when a stopping pull worker gave the task back while its handler still ran. */
  volatile boolean abandoned;
  private ScheduledFuture<?> extensions;

  HeldLease(Task task, PushSession session, Duration interval) {
    this.task = task;
    this.session = session;
    this.length = lengthOf(task);
    this.interval = interval != null ? interval : length.dividedBy(2);
  }

  /** The length of the lease the task was delivered with, by the server's clock. */
  static Duration lengthOf(Task task) {
    if (task.hasLeaseExpireTime() && task.getLastAttempt().hasDispatchTime()) {
      Duration length = Duration.between(
          ProtoTimes.instant(task.getLastAttempt().getDispatchTime()),
          ProtoTimes.instant(task.getLeaseExpireTime()));
      if (!length.isNegative() && !length.isZero()) {
        return length;
      }
    }
    if (task.hasDispatchDeadline()) {
      return ProtoTimes.duration(task.getDispatchDeadline());
    }
    return FALLBACK_LENGTH;
  }

  /** Runs {@code extend} every interval until {@link #stopExtending()}. */
  synchronized void extendEvery(ScheduledExecutorService timer, Runnable extend) {
    long every = Math.max(1, interval.toMillis());
    extensions = timer.scheduleWithFixedDelay(extend, every, every, TimeUnit.MILLISECONDS);
  }

  synchronized void stopExtending() {
    if (extensions != null) {
      extensions.cancel(false);
    }
  }

  /** The key of a lease: a task and the one lease token it was delivered with. */
  static String key(String name, String leaseToken) {
    return name + "\n" + leaseToken;
  }

  String key() {
    return key(task.getName(), task.getLeaseToken());
  }
}
