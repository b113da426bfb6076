package dev.taskq.client;

import java.util.Objects;

/**
 * The outcome of one item of a batch call ({@code BatchCreateTasks}, {@code BatchDeleteTasks}):
 * its value, or the error that refused this item alone. A batch call that fails as a whole
 * throws instead.
 *
 * @param value the item's result when it succeeded ({@code null} for deletes, which have none)
 * @param error why the item was refused, or {@code null} when it succeeded
 */
public record ItemResult<T>(T value, TaskqException error) {

  static <T> ItemResult<T> ok(T value) {
    return new ItemResult<>(value, null);
  }

  static <T> ItemResult<T> failed(TaskqException error) {
    return new ItemResult<>(null, Objects.requireNonNull(error));
  }

  /** Whether the item succeeded. */
  public boolean isOk() {
    return error == null;
  }

  /** The value, or throws the item's error. */
  public T getOrThrow() {
    if (error != null) {
      throw error;
    }
    return value;
  }
}
