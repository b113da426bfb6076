package dev.taskq.client;

import dev.taskq.v1.DeleteTaskRequest;
import dev.taskq.v1.Task;
import io.grpc.Status;
import java.lang.System.Logger.Level;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.FutureTask;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * The lease → work → delete loop over a pull queue.
 *
 * <pre>{@code
 * PullWorker worker = PullWorker.builder(client, "reports", task -> render(task.getPayload()))
 *     .leaseDuration(Duration.ofMinutes(1))
 *     .build()
 *     .start();
 * }</pre>
 *
 * <p>The loop leases at most as many tasks as it has free handler slots (up to
 * {@code batchSize} per LeaseTasks call, long-polling {@code pollWait} when none is ready),
 * runs the handler for each on its executor, at most {@code concurrency} at once, and extends
 * a task's lease while its handler runs. A handler that returns has its task deleted; deletes
 * made within a few milliseconds of each other go in one BatchDeleteTasks.
 *
 * <p>A handler that throws has its task's lease released at once (ModifyLease to 0): the task
 * is ready for the next lease straight away, with one more attempt counted. Pull queues have
 * no backoff of their own, so a task that keeps failing is bounded only by the queue's
 * {@code max_attempts} (then it fails or moves to the dead-letter queue). Throw
 * {@link RetryAfter} to have it leased again only after a delay (its lease is set to end
 * then). {@link PermanentFailure} is released like any other exception: pull queues have no
 * permanent failure (set {@code max_attempts}, or delete the task yourself).
 *
 * <p>LeaseTasks failures that may pass (UNAVAILABLE, a paused queue, ...) are retried with
 * backoff; others (the queue does not exist, or is a push queue) end the worker, and
 * {@link #awaitTermination} throws them.
 *
 * <p>Stopping ({@link #stop()}, {@link #close()}) ends the loop after the current long poll (at
 * most {@code pollWait}); running handlers get the grace period to finish and their tasks are
 * deleted; tasks leased meanwhile, and those whose handlers outlast the grace period
 * (interrupted), are released at once for other workers.
 */
public final class PullWorker implements AutoCloseable {
  private static final System.Logger log = System.getLogger(PullWorker.class.getName());

  /** LeaseTasks failures worth retrying after a pause; any other ends the worker. */
  static final Set<Status.Code> TRANSIENT_CODES = EnumSet.of(
      Status.Code.UNAVAILABLE, Status.Code.DEADLINE_EXCEEDED, Status.Code.RESOURCE_EXHAUSTED,
      Status.Code.INTERNAL, Status.Code.UNKNOWN, Status.Code.ABORTED, Status.Code.CANCELLED);

  private static final Duration RETRY_INITIAL_BACKOFF = Duration.ofMillis(100);
  private static final Duration RETRY_MAX_BACKOFF = Duration.ofSeconds(10);
  /** How long the last deletes and releases get when the worker ends. */
  private static final Duration FINAL_ANSWERS_TIMEOUT = Duration.ofSeconds(10);

  private final TaskqClient client;
  private final String queue;
  private final TaskHandler handler;
  private final LeaseOptions lease;
  private final int batchSize;
  private final int concurrency;
  private final ExecutorService executor;
  private final boolean ownsExecutor;
  private final Duration extensionInterval;
  private final ScheduledThreadPoolExecutor timer;
  private final Batcher<DeleteTaskRequest, Void> deletes;
  private final Lifecycle lifecycle;

  /** Guards the running handlers; notified when one ends, and on stop. */
  private final Object lock = new Object();
  private final Map<HeldLease, FutureTask<Void>> running = new HashMap<>();

  private PullWorker(Builder builder) {
    this.client = builder.client;
    this.queue = builder.queue;
    this.handler = builder.handler;
    LeaseOptions options = LeaseOptions.of(builder.leaseDuration, builder.batchSize)
        .withMaxWait(builder.pollWait);
    if (builder.tag != null) {
      options = options.withTag(builder.tag);
    }
    this.lease = builder.oldestTag ? options.withOldestTag() : options;
    this.batchSize = builder.batchSize;
    this.concurrency = builder.concurrency;
    this.ownsExecutor = builder.executor == null;
    this.executor = ownsExecutor
        ? Executors.newFixedThreadPool(concurrency, Threads.daemon("taskq-pull-handler"))
        : builder.executor;
    this.extensionInterval = builder.extensionInterval;
    this.timer = Threads.timer("taskq-pull-timer");
    this.deletes = new Batcher<>(client::deleteTasksAsync,
        BatchSettings.DEFAULT.withMaxDelay(builder.deleteDelay).withMaxItems(BatchSettings.MAX_ITEMS),
        request -> request.getSerializedSize() + 4L, timer);
    this.lifecycle = new Lifecycle("taskq-pull-worker " + queue, builder.gracePeriod, this::wake);
  }

  /** A builder of a worker for the pull queue {@code queue} running {@code handler}. */
  public static Builder builder(TaskqClient client, String queue, TaskHandler handler) {
    return new Builder(client, queue, handler);
  }

  /** Settings of a {@link PullWorker}. */
  public static final class Builder {
    private final TaskqClient client;
    private final String queue;
    private final TaskHandler handler;
    private Duration leaseDuration = Duration.ofSeconds(60);
    private int batchSize = 10;
    private int concurrency = 8;
    private ExecutorService executor;
    private String tag;
    private boolean oldestTag;
    private Duration pollWait = Duration.ofSeconds(5);
    private Duration gracePeriod = Duration.ofSeconds(30);
    private Duration extensionInterval;
    private Duration deleteDelay = Duration.ofMillis(5);

    private Builder(TaskqClient client, String queue, TaskHandler handler) {
      this.client = Objects.requireNonNull(client, "client");
      this.queue = Names.queue(queue);
      this.handler = Objects.requireNonNull(handler, "handler");
    }

    /** How long each lease lasts; extended while the handler runs. Default 60 s. */
    public Builder leaseDuration(Duration leaseDuration) {
      this.leaseDuration = Objects.requireNonNull(leaseDuration, "leaseDuration");
      return this;
    }

    /** The most tasks per LeaseTasks call, 1 to 1000. Default 10. */
    public Builder batchSize(int batchSize) {
      if (batchSize < 1 || batchSize > 1000) {
        throw new IllegalArgumentException("batchSize is 1 to 1000, not " + batchSize);
      }
      this.batchSize = batchSize;
      return this;
    }

    /** Handlers running at once. Default 8. */
    public Builder concurrency(int concurrency) {
      if (concurrency < 1) {
        throw new IllegalArgumentException("concurrency must be at least 1, not " + concurrency);
      }
      this.concurrency = concurrency;
      return this;
    }

    /**
     * Runs the handlers on this executor (not shut down by the worker), still at most
     * {@code concurrency} at once. Default: a pool of {@code concurrency} threads of its own.
     */
    public Builder executor(ExecutorService executor) {
      this.executor = Objects.requireNonNull(executor, "executor");
      return this;
    }

    /** Leases only tasks of this tag. */
    public Builder tag(String tag) {
      this.tag = Objects.requireNonNull(tag, "tag");
      return this;
    }

    /** Leases, each time, only the tasks sharing the tag of the oldest ready task. */
    public Builder oldestTag() {
      this.oldestTag = true;
      return this;
    }

    /**
     * How long a LeaseTasks call waits for a task when none is ready (at most 60 s); also the
     * longest a stop waits for the loop to notice. Default 5 s.
     */
    public Builder pollWait(Duration pollWait) {
      this.pollWait = Objects.requireNonNull(pollWait, "pollWait");
      return this;
    }

    /** How long running handlers get to finish when the worker stops. Default 30 s. */
    public Builder gracePeriod(Duration gracePeriod) {
      this.gracePeriod = Objects.requireNonNull(gracePeriod, "gracePeriod");
      return this;
    }

    /** How often a held task's lease is extended. Default: at half the lease duration. */
    public Builder extensionInterval(Duration extensionInterval) {
      this.extensionInterval = Objects.requireNonNull(extensionInterval, "extensionInterval");
      return this;
    }

    /** How long a delete waits for others to share its BatchDeleteTasks. Default 5 ms. */
    public Builder deleteDelay(Duration deleteDelay) {
      this.deleteDelay = Objects.requireNonNull(deleteDelay, "deleteDelay");
      return this;
    }

    public PullWorker build() {
      return new PullWorker(this);
    }
  }

  // Public API -------------------------------------------------------------------------------

  /** Starts the loop on a thread of its own. Returns this worker. */
  public PullWorker start() {
    lifecycle.start(this::supervise);
    return this;
  }

  /** Asks the worker to stop gracefully, with the configured grace period; returns at once. */
  public void stop() {
    lifecycle.stop(null);
  }

  /** Asks the worker to stop, giving running handlers {@code gracePeriod} to finish. */
  public void stop(Duration gracePeriod) {
    lifecycle.stop(Objects.requireNonNull(gracePeriod, "gracePeriod"));
  }

  /**
   * Waits up to {@code timeout} for the worker to end. Returns whether it ended; throws the
   * {@link TaskqException} that ended it if a failure no retry could cure did.
   */
  public boolean awaitTermination(Duration timeout) throws InterruptedException {
    return lifecycle.awaitTermination(timeout);
  }

  /** Completes when the worker has ended, exceptionally with the error that ended it, if any. */
  public CompletableFuture<Void> termination() {
    return lifecycle.termination();
  }

  /** Whether the worker has started and not ended yet. */
  public boolean isRunning() {
    return lifecycle.isRunning();
  }

  /** Stops gracefully and waits for the end (the poll, the grace period, a little more). */
  @Override
  public void close() {
    lifecycle.close(lease.maxWait().plus(FINAL_ANSWERS_TIMEOUT).plusSeconds(5));
  }

  // The loop ---------------------------------------------------------------------------------

  private void supervise() {
    try {
      leaseUntilStopped();
    } finally {
      finish();
    }
  }

  private void leaseUntilStopped() {
    Duration backoff = RETRY_INITIAL_BACKOFF;
    while (!lifecycle.isStopRequested()) {
      if (client.isClosed()) {
        throw new IllegalStateException("the TaskqClient of the worker on " + queue + " was closed");
      }
      int free = awaitFreeSlots();
      if (lifecycle.isStopRequested()) {
        return;
      }
      List<Task> tasks;
      try {
        tasks = client.leaseTasks(queue, lease.withMaxTasks(Math.min(batchSize, free)));
      } catch (TaskqException error) {
        boolean paused = error instanceof TaskqException.QueuePaused;
        if (!paused && !TRANSIENT_CODES.contains(error.code())) {
          throw error;
        }
        Duration delay = Worker.jitter(paused ? lease.maxWait().plusMillis(100) : backoff);
        log.log(Level.WARNING, "leasing from {0} failed ({1}); trying again in {2} ms",
            queue, error.getMessage(), delay.toMillis());
        lifecycle.sleepUnlessStopped(delay);
        backoff = Worker.min(backoff.multipliedBy(2), RETRY_MAX_BACKOFF);
        continue;
      }
      backoff = RETRY_INITIAL_BACKOFF;
      if (lifecycle.isStopRequested()) {
        // Leased during the last poll: someone else's now.
        releaseAll(tasks);
        return;
      }
      for (Task task : tasks) {
        start(new HeldLease(task, null, extensionInterval));
      }
    }
  }

  private int awaitFreeSlots() {
    synchronized (lock) {
      while (running.size() >= concurrency && !lifecycle.isStopRequested()) {
        try {
          lock.wait();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          lifecycle.stop(Duration.ZERO);
        }
      }
      return concurrency - running.size();
    }
  }

  private void start(HeldLease held) {
    held.extendEvery(timer, () -> extend(held));
    FutureTask<Void> job = new FutureTask<>(() -> handle(held), null);
    synchronized (lock) {
      running.put(held, job);
    }
    try {
      executor.execute(job);
    } catch (RejectedExecutionException e) {
      log.log(Level.ERROR, "the handler executor refused a task of {0}; releasing it", queue);
      if (forget(held, () -> { })) {
        release(held.task, Duration.ZERO);
      }
    }
  }

  private void handle(HeldLease held) {
    Task task = held.task;
    Throwable failure = null;
    try {
      handler.handle(task);
    } catch (Throwable error) {
      failure = error;
    }
    // The delete is queued while the slot is freed, so that a stopping worker, which sends
    // the last deletes once no handler runs, cannot miss it.
    Runnable delete = failure != null ? () -> { } : () -> deletes.submit(queue,
        DeleteTaskRequest.newBuilder()
            .setName(task.getName()).setLeaseToken(task.getLeaseToken()).build())
        .whenComplete((ignored, error) -> {
          if (error != null) {
            log.log(Level.WARNING, "deleting {0} after its handler returned failed: {1}",
                task.getName(), TaskqException.from(error).getMessage());
          }
        });
    if (!forget(held, delete)) {
      log.log(Level.INFO, "{0} finished after the worker gave it up", task.getName());
      return;
    }
    if (failure == null) {
      return;
    }
    if (failure instanceof RetryAfter retry) {
      log.log(Level.INFO, "{0} will be leased again in {1}", task.getName(), retry.delay());
      release(task, retry.delay());
    } else {
      log.log(Level.WARNING, "task " + task.getName() + " failed; releasing it", failure);
      release(task, Duration.ZERO);
    }
  }

  /**
   * Frees the task's slot and, if the task is still this worker's, runs {@code andThen} before
   * anyone waiting for the slot hears of it. False if the worker already gave the task up.
   */
  private boolean forget(HeldLease held, Runnable andThen) {
    held.stopExtending();
    synchronized (lock) {
      boolean mine = running.remove(held) != null && !held.abandoned;
      if (mine) {
        andThen.run();
      }
      lock.notifyAll();
      return mine;
    }
  }

  private void extend(HeldLease held) {
    if (held.lost) {
      held.stopExtending();
      return;
    }
    client.modifyLeaseAsync(held.task, held.length).whenComplete((task, error) -> {
      if (error == null) {
        return;
      }
      TaskqException failure = TaskqException.from(error);
      if (failure instanceof TaskqException.LeaseLost
          || failure instanceof TaskqException.TaskNotFound) {
        held.lost = true;
        held.stopExtending();
        log.log(Level.WARNING, "lost the lease of {0} while its handler runs: {1}",
            held.task.getName(), failure.getMessage());
      } else {
        log.log(Level.WARNING, "extending the lease of {0} failed: {1}",
            held.task.getName(), failure.getMessage());
      }
    });
  }

  private CompletableFuture<Task> release(Task task, Duration after) {
    return client.modifyLeaseAsync(task, after).whenComplete((released, error) -> {
      if (error != null) {
        log.log(Level.WARNING, "could not release {0}: {1}",
            task.getName(), TaskqException.from(error).getMessage());
      }
    });
  }

  private void releaseAll(List<Task> tasks) {
    List<CompletableFuture<Task>> releases = new ArrayList<>();
    for (Task task : tasks) {
      releases.add(release(task, Duration.ZERO));
    }
    awaitQuietly(CompletableFuture.allOf(releases.toArray(CompletableFuture[]::new)));
  }

  // Stopping ---------------------------------------------------------------------------------

  /**
   * Lets running handlers finish within the grace period, sends the last deletes, releases
   * the tasks of handlers still running (interrupting them), and shuts the threads down.
   */
  private void finish() {
    List<HeldLease> stragglers = new ArrayList<>();
    synchronized (lock) {
      while (!running.isEmpty()) {
        long remaining = Duration.between(Instant.now(), lifecycle.graceDeadline()).toMillis();
        if (remaining <= 0) {
          break;
        }
        try {
          lock.wait(Math.min(remaining, 100));
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          break;
        }
      }
      for (Map.Entry<HeldLease, FutureTask<Void>> entry : running.entrySet()) {
        entry.getKey().abandoned = true;
        entry.getKey().stopExtending();
        entry.getValue().cancel(true);
        stragglers.add(entry.getKey());
      }
      running.clear();
    }
    awaitQuietly(deletes.close());
    if (!stragglers.isEmpty()) {
      log.log(Level.WARNING,
          "{0} handlers still running after the grace period; releasing their tasks",
          stragglers.size());
      releaseAll(stragglers.stream().map(held -> held.task).toList());
    }
    timer.shutdownNow();
    if (ownsExecutor) {
      executor.shutdownNow();
    }
  }

  private void wake() {
    synchronized (lock) {
      lock.notifyAll();
    }
  }

  private static void awaitQuietly(CompletableFuture<?> future) {
    try {
      future.get(FINAL_ANSWERS_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (Exception e) {
      // each failure was logged where it happened
    }
  }
}
