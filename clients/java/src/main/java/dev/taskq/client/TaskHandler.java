package dev.taskq.client;

import dev.taskq.v1.Task;

/**
 * The work a {@link Worker} or {@link PullWorker} does for each task.
 *
 * <p>Returning means done: the task is acknowledged (deleted). Throwing means failed: the
 * task is retried after the queue's backoff, and the exception's class and message become its
 * {@code last_attempt.error}. Throw {@link RetryAfter} to choose the delay, or
 * {@link PermanentFailure} for a task that can never succeed. Delivery is at least once: a
 * task may run again after a crash or a lost lease, so handlers should be idempotent.
 *
 * <p>A handler that runs a long time keeps its task: the worker extends the lease while it
 * runs. One interrupted by a stopping worker (after its grace period) has lost its task.
 */
@FunctionalInterface
public interface TaskHandler {
  /**
   * Does the task's work.
   *
   * @param task the task, payload included, with its {@code lease_token}, {@code attempt_count}
   *     (1 on the first attempt) and {@code last_attempt}
   */
  void handle(Task task) throws Exception;
}
