package dev.taskq.client;

import dev.taskq.v1.Task;
import io.grpc.Status;
import java.lang.System.Logger.Level;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayDeque;
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
import java.util.concurrent.ThreadLocalRandom;

/**
 * Runs a {@link TaskHandler} for every task of a push queue, delivered over StreamTasks.
 *
 * <pre>{@code
 * Worker worker = Worker.builder(client, "emails", task -> send(task.getPayload()))
 *     .concurrency(8)
 *     .build()
 *     .start();
 * Runtime.getRuntime().addShutdownHook(new Thread(worker::close));
 * }</pre>
 *
 * <p>The worker subscribes to the queue and runs the handler on each task it receives, at
 * most {@code concurrency} at once, on its executor. While a handler runs, the task's lease is
 * extended. A handler that returns acks its task; one that throws nacks it with the
 * exception's class and message ({@link RetryAfter} sets the retry delay, {@link
 * PermanentFailure} dead-letters the task at once). Answers made within a few milliseconds of
 * each other share one stream message. The server sends up to {@code maxOutstanding} tasks
 * ahead of the answers (default twice the concurrency), so a freed slot never waits for a
 * round trip.
 *
 * <p>When the stream fails (the server restarts, the network drops) the worker subscribes
 * again with exponential backoff. The server has released the old stream's tasks by then:
 * handlers still running for them finish, but their answers are dropped, and the tasks run
 * again elsewhere (delivery is at least once). A failure no retry can cure (the queue does not
 * exist, or is a pull queue) ends the worker: {@link #awaitTermination} throws it.
 *
 * <p>Stopping ({@link #stop()}, {@link #close()}): no new task is started; running handlers get
 * the grace period to finish, and their answers are sent; then the stream ends, and the server
 * releases at once, for other workers, the tasks received but not started (each release counts
 * as an attempt). Handlers still running after the grace period are interrupted and their
 * tasks released.
 */
public final class Worker implements AutoCloseable {
  private static final System.Logger log = System.getLogger(Worker.class.getName());

  /** Stream failures that no retry can cure: the worker ends with the error. */
  static final Set<Status.Code> FATAL_CODES = EnumSet.of(
      Status.Code.NOT_FOUND, Status.Code.FAILED_PRECONDITION, Status.Code.INVALID_ARGUMENT,
      Status.Code.PERMISSION_DENIED, Status.Code.UNAUTHENTICATED, Status.Code.UNIMPLEMENTED);

  /** The most tasks a stream may hold unanswered (the server's limit). */
  static final int MAX_OUTSTANDING = 10_000;

  /** After half-closing the stream, how long to wait for the server to close it. */
  static final Duration END_OF_STREAM_TIMEOUT = Duration.ofSeconds(10);

  private final TaskqClient client;
  private final String queue;
  private final TaskHandler handler;
  private final int concurrency;
  private final ExecutorService executor;
  private final boolean ownsExecutor;
  private final int maxOutstanding;
  private final Duration extensionInterval;
  private final Duration answerDelay;
  private final Duration reconnectInitialBackoff;
  private final Duration reconnectMaxBackoff;
  private final ScheduledThreadPoolExecutor timer;
  private final Lifecycle lifecycle;

  /** Guards the backlog and the running handlers; notified when a handler ends or on stop. */
  private final Object lock = new Object();
  /** Tasks received and not started yet, in arrival order. */
  private final ArrayDeque<HeldLease> backlog = new ArrayDeque<>();
  private final Map<HeldLease, FutureTask<Void>> running = new HashMap<>();

  private Worker(Builder builder) {
    this.client = builder.client;
    this.queue = builder.queue;
    this.handler = builder.handler;
    this.concurrency = builder.concurrency;
    this.ownsExecutor = builder.executor == null;
    this.executor = ownsExecutor
        ? Executors.newFixedThreadPool(concurrency, Threads.daemon("taskq-handler"))
        : builder.executor;
    this.maxOutstanding = builder.maxOutstanding > 0
        ? builder.maxOutstanding : Math.min(2 * concurrency, MAX_OUTSTANDING);
    this.extensionInterval = builder.extensionInterval;
    this.answerDelay = builder.answerDelay;
    this.reconnectInitialBackoff = builder.reconnectInitialBackoff;
    this.reconnectMaxBackoff = builder.reconnectMaxBackoff;
    this.timer = Threads.timer("taskq-worker-timer");
    this.lifecycle = new Lifecycle("taskq-worker " + queue, builder.gracePeriod, this::wake);
  }

  /** A builder of a worker for {@code queue} (an id or full name) running {@code handler}. */
  public static Builder builder(TaskqClient client, String queue, TaskHandler handler) {
    return new Builder(client, queue, handler);
  }

  /** Settings of a {@link Worker}. */
  public static final class Builder {
    private final TaskqClient client;
    private final String queue;
    private final TaskHandler handler;
    private int concurrency = 8;
    private ExecutorService executor;
    private int maxOutstanding;
    private Duration gracePeriod = Duration.ofSeconds(30);
    private Duration extensionInterval;
    private Duration answerDelay = Duration.ofMillis(5);
    private Duration reconnectInitialBackoff = Duration.ofMillis(100);
    private Duration reconnectMaxBackoff = Duration.ofSeconds(10);

    private Builder(TaskqClient client, String queue, TaskHandler handler) {
      this.client = Objects.requireNonNull(client, "client");
      this.queue = Names.queue(queue);
      this.handler = Objects.requireNonNull(handler, "handler");
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
     * Runs the handlers on this executor (which the worker does not shut down), still at most
     * {@code concurrency} at once. Default: a pool of {@code concurrency} threads of its own.
     */
    public Builder executor(ExecutorService executor) {
      this.executor = Objects.requireNonNull(executor, "executor");
      return this;
    }

    /**
     * Tasks the server may send ahead of the answers (running plus waiting to start), 1 to
     * 10,000. Default twice the concurrency.
     */
    public Builder maxOutstanding(int maxOutstanding) {
      if (maxOutstanding < 1 || maxOutstanding > MAX_OUTSTANDING) {
        throw new IllegalArgumentException("maxOutstanding is 1 to 10000, not " + maxOutstanding);
      }
      this.maxOutstanding = maxOutstanding;
      return this;
    }

    /** How long running handlers get to finish when the worker stops. Default 30 s. */
    public Builder gracePeriod(Duration gracePeriod) {
      this.gracePeriod = Objects.requireNonNull(gracePeriod, "gracePeriod");
      return this;
    }

    /**
     * How often a held task's lease is extended. Default: when half of the lease (the queue's
     * dispatch deadline) is left.
     */
    public Builder extensionInterval(Duration extensionInterval) {
      this.extensionInterval = Objects.requireNonNull(extensionInterval, "extensionInterval");
      return this;
    }

    /** How long an answer waits for others to share its stream message. Default 5 ms. */
    public Builder answerDelay(Duration answerDelay) {
      this.answerDelay = Objects.requireNonNull(answerDelay, "answerDelay");
      return this;
    }

    /**
     * The wait before subscribing again after the stream failed, doubling from {@code initial}
     * up to {@code max} while attempts fail (with jitter). Default 100 ms to 10 s.
     */
    public Builder reconnectBackoff(Duration initial, Duration max) {
      this.reconnectInitialBackoff = Objects.requireNonNull(initial, "initial");
      this.reconnectMaxBackoff = Objects.requireNonNull(max, "max");
      return this;
    }

    public Worker build() {
      return new Worker(this);
    }
  }

  // Public API -------------------------------------------------------------------------------

  /** Subscribes and starts handling tasks, on threads of its own. Returns this worker. */
  public Worker start() {
    lifecycle.start(this::supervise);
    return this;
  }

  /**
   * Asks the worker to stop gracefully, with the configured grace period; returns at once.
   * Use {@link #awaitTermination} to wait.
   */
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

  /** Stops gracefully and waits for the end (the grace period, and a little more). */
  @Override
  public void close() {
    lifecycle.close(END_OF_STREAM_TIMEOUT.plusSeconds(5));
  }

  // Subscribing ------------------------------------------------------------------------------

  private void supervise() {
    Duration backoff = reconnectInitialBackoff;
    PushSession session = null;
    try {
      while (!lifecycle.isStopRequested()) {
        if (client.isClosed()) {
          throw new IllegalStateException("the TaskqClient of the worker on " + queue + " was closed");
        }
        session = new PushSession(queue, timer, answerDelay, extensionInterval, this::received);
        session.start(client.channel(), maxOutstanding);
        CompletableFuture.anyOf(session.ended(), lifecycle.stopSignal()).join();
        if (lifecycle.isStopRequested()) {
          break;
        }
        Throwable error = session.ended().join();
        forgetBacklog(session);
        if (error != null && FATAL_CODES.contains(Status.fromThrowable(error).getCode())) {
          throw TaskqException.from(error);
        }
        if (session.heardFromServer()) {
          backoff = reconnectInitialBackoff;
        }
        Duration delay = jitter(backoff);
        log.log(Level.WARNING, "the stream on {0} ended ({1}); subscribing again in {2} ms",
            queue, error == null ? "the server closed it" : TaskqException.from(error).getMessage(),
            delay.toMillis());
        lifecycle.sleepUnlessStopped(delay);
        backoff = min(backoff.multipliedBy(2), reconnectMaxBackoff);
      }
      drain(session);
    } finally {
      synchronized (lock) {
        backlog.clear();
      }
      timer.shutdownNow();
      if (ownsExecutor) {
        executor.shutdownNow();
      }
    }
  }

  /**
   * The graceful end: running handlers get the grace period and their answers are sent; then
   * the stream is half-closed (the server releases the backlog); then stragglers are
   * interrupted, their answers dropped.
   */
  private void drain(PushSession session) {
    List<FutureTask<Void>> stragglers = awaitHandlers();
    if (session != null && session.isOpen()) {
      session.finish(END_OF_STREAM_TIMEOUT);
    }
    if (!stragglers.isEmpty()) {
      log.log(Level.WARNING,
          "{0} handlers still running after the grace period; their tasks are released",
          stragglers.size());
      stragglers.forEach(job -> job.cancel(true));
    }
  }

  /** Waits for the running handlers until the grace period ends; returns those still running. */
  private List<FutureTask<Void>> awaitHandlers() {
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
      return new ArrayList<>(running.values());
    }
  }

  private void wake() {
    synchronized (lock) {
      lock.notifyAll();
    }
  }

  // Handlers ---------------------------------------------------------------------------------

  /** A task arrived (on a gRPC thread): queue it, and start it if a slot is free. */
  private void received(HeldLease lease) {
    synchronized (lock) {
      backlog.add(lease);
    }
    startHandlers();
  }

  /** Starts backlog tasks while slots are free and the worker is not stopping. */
  private void startHandlers() {
    List<FutureTask<Void>> jobs = new ArrayList<>();
    synchronized (lock) {
      while (!lifecycle.isStopRequested() && running.size() < concurrency && !backlog.isEmpty()) {
        HeldLease lease = backlog.poll();
        if (lease.lost || !lease.session.isOpen()) {
          lease.stopExtending();
          continue;
        }
        FutureTask<Void> job = new FutureTask<>(() -> handle(lease), null);
        running.put(lease, job);
        jobs.add(job);
      }
    }
    for (FutureTask<Void> job : jobs) {
      try {
        executor.execute(job);
      } catch (RejectedExecutionException e) {
        // The caller's executor was shut down: the task stays unanswered, and is released
        // when the stream ends.
        log.log(Level.ERROR, "the handler executor refused a task of {0}", queue);
        job.cancel(false);
        finished(job);
      }
    }
  }

  private void handle(HeldLease lease) {
    Task task = lease.task;
    boolean sent;
    try {
      handler.handle(task);
      sent = lease.session.ack(lease);
    } catch (Throwable error) {
      logFailure(task, error);
      sent = lease.session.nack(lease, Failures.nack(task, error));
    } finally {
      lease.stopExtending();
      synchronized (lock) {
        running.remove(lease);
        lock.notifyAll();
      }
      startHandlers();
    }
    if (!sent) {
      log.log(Level.INFO,
          "{0} finished after its stream ended; the server has already released it",
          task.getName());
    }
  }

  private void finished(FutureTask<Void> job) {
    synchronized (lock) {
      running.values().remove(job);
      lock.notifyAll();
    }
  }

  /** Drops the not-started tasks of an ended stream: the server has released them. */
  private void forgetBacklog(PushSession session) {
    synchronized (lock) {
      backlog.removeIf(lease -> lease.session == session);
    }
  }

  private static void logFailure(Task task, Throwable error) {
    if (error instanceof RetryAfter retry) {
      log.log(Level.INFO, "{0} will be retried in {1}", task.getName(), retry.delay());
    } else if (error instanceof PermanentFailure) {
      log.log(Level.WARNING, "{0} failed permanently: {1}", task.getName(), error.getMessage());
    } else {
      log.log(Level.WARNING, "task " + task.getName() + " failed", error);
    }
  }

  static Duration jitter(Duration backoff) {
    double factor = ThreadLocalRandom.current().nextDouble(0.5, 1.0);
    return Duration.ofNanos((long) (backoff.toNanos() * factor));
  }

  static Duration min(Duration a, Duration b) {
    return a.compareTo(b) <= 0 ? a : b;
  }
}
