package dev.taskq.client;

import dev.taskq.v1.TaskView;
import java.time.Duration;
import java.util.Objects;

/**
 * What {@link TaskqClient#leaseTasks} asks for:
 * {@code LeaseOptions.of(Duration.ofMinutes(1), 10).withTag("q3").withMaxWait(Duration.ofSeconds(5))}.
 *
 * @param leaseDuration how long the leases last, from now: more than 0 and at most 7 days
 * @param maxTasks the most tasks to lease, 1 to 1000
 * @param tag lease only tasks of this tag; {@code null} for any tag
 * @param oldestTag lease only tasks sharing the tag of the oldest ready task (App Engine's
 *     {@code lease_tasks_by_tag} without a tag); not with {@code tag}
 * @param maxWait how long the call waits for a task when none is ready (at most 60 s); zero
 *     returns at once. The call's deadline is extended by this much.
 * @param view {@code TASK_VIEW_FULL} (the default: payloads included) or {@code TASK_VIEW_BASIC}
 */
public record LeaseOptions(
    Duration leaseDuration, int maxTasks, String tag, boolean oldestTag, Duration maxWait,
    TaskView view) {

  public LeaseOptions {
    Objects.requireNonNull(leaseDuration, "leaseDuration");
    Objects.requireNonNull(maxWait, "maxWait");
    Objects.requireNonNull(view, "view");
    if (maxTasks < 1) {
      throw new IllegalArgumentException("maxTasks must be at least 1, not " + maxTasks);
    }
  }

  /** Up to {@code maxTasks} tasks of any tag, leased for {@code leaseDuration}, no wait. */
  public static LeaseOptions of(Duration leaseDuration, int maxTasks) {
    return new LeaseOptions(
        leaseDuration, maxTasks, null, false, Duration.ZERO, TaskView.TASK_VIEW_UNSPECIFIED);
  }

  public LeaseOptions withTag(String tag) {
    return new LeaseOptions(leaseDuration, maxTasks, tag, oldestTag, maxWait, view);
  }

  public LeaseOptions withOldestTag() {
    return new LeaseOptions(leaseDuration, maxTasks, tag, true, maxWait, view);
  }

  public LeaseOptions withMaxWait(Duration maxWait) {
    return new LeaseOptions(leaseDuration, maxTasks, tag, oldestTag, maxWait, view);
  }

  public LeaseOptions withMaxTasks(int maxTasks) {
    return new LeaseOptions(leaseDuration, maxTasks, tag, oldestTag, maxWait, view);
  }

  public LeaseOptions withView(TaskView view) {
    return new LeaseOptions(leaseDuration, maxTasks, tag, oldestTag, maxWait, view);
  }
}
