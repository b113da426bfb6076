package dev.taskq.client;

/**
 * Resource names: {@code queues/{queue_id}} and {@code queues/{queue_id}/tasks/{task_id}}.
 *
 * <p>Every method of the client takes a queue as its id ({@code "reports"}) or its full name
 * ({@code "queues/reports"}), and a task as its full name, or as an id within a given queue.
 */
final class Names {
  static final String QUEUES = "queues/";
  private static final String TASKS = "/tasks/";

  private Names() {}

  /** The full name of a queue given by id or by full name. */
  static String queue(String queue) {
    if (queue == null || queue.isEmpty()) {
      throw new IllegalArgumentException("a queue id or name is required");
    }
    return queue.startsWith(QUEUES) ? queue : QUEUES + queue;
  }

  /** The full name of a task given by full name, or by id within {@code queue}. */
  static String task(String queue, String task) {
    if (task.startsWith(QUEUES)) {
      return task;
    }
    return queue(queue) + TASKS + task;
  }

  /** A task's full name, checked for its shape. */
  static String task(String name) {
    if (name == null || !name.startsWith(QUEUES) || !name.contains(TASKS)) {
      throw new IllegalArgumentException(
          "a task name looks like queues/{queue_id}/tasks/{task_id}, not " + name);
    }
    return name;
  }

  /** The queue of a task's full name: {@code queues/q/tasks/t} gives {@code queues/q}. */
  static String queueOf(String taskName) {
    int tasks = task(taskName).indexOf(TASKS);
    return taskName.substring(0, tasks);
  }
}
