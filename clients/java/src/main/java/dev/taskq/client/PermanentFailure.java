package dev.taskq.client;

/**
 * Thrown by a {@link TaskHandler} for a task that can never succeed (a malformed payload, a
 * record that no longer exists): a push queue does not retry it but moves it to its
 * dead-letter queue, or to {@code TASK_STATE_FAILED}, at once. Pull queues have no permanent
 * failure: a {@link PullWorker} releases the task like after any other exception.
 */
public class PermanentFailure extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public PermanentFailure(String message) {
    super(message);
  }

  public PermanentFailure(String message, Throwable cause) {
    super(message, cause);
  }
}
