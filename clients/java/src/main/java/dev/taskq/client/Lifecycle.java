package dev.taskq.client;

import java.time.Duration;
import java.time.Instant;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Start, stop and termination of a worker, shared by {@link Worker} and {@link PullWorker}.
 *
 * <p>{@link #start} runs the worker's body on a thread of its own (not a daemon: a running
 * worker keeps the JVM alive, as an executor does). {@link #stop} asks it to stop gracefully;
 * a second call may shorten the grace period. The termination future completes when the body
 * returns, or exceptionally with the error that ended it.
 */
final class Lifecycle {
  private final String what;
  private final Runnable onStop;
  private final CompletableFuture<Void> stopSignal = new CompletableFuture<>();
  private final CompletableFuture<Void> termination = new CompletableFuture<>();
  private boolean started;
  private volatile Duration gracePeriod;
  private volatile Instant stopTime;

  Lifecycle(String what, Duration gracePeriod, Runnable onStop) {
    this.what = what;
    this.gracePeriod = gracePeriod;
    this.onStop = onStop;
  }

  synchronized void start(Runnable body) {
    if (started) {
      throw new IllegalStateException(
          what + (isStopRequested() ? " was stopped" : " was already started"));
    }
    started = true;
    Thread thread = new Thread(() -> {
      try {
        body.run();
        termination.complete(null);
      } catch (Throwable error) {
        termination.completeExceptionally(error);
      }
    }, what);
    thread.start();
  }

  /** Asks the worker to stop; {@code gracePeriod} null keeps the configured one. */
  void stop(Duration gracePeriod) {
    synchronized (this) {
      if (stopTime == null) {
        stopTime = Instant.now();
      }
      if (gracePeriod != null) {
        this.gracePeriod = gracePeriod;
      }
      if (!started) {
        started = true;
        termination.complete(null);
      }
    }
    stopSignal.complete(null);
    onStop.run();
  }

  boolean isStopRequested() {
    return stopSignal.isDone();
  }

  /** Completes when a stop is asked for. */
  CompletableFuture<Void> stopSignal() {
    return stopSignal;
  }

  /** When the grace period of a requested stop ends. */
  Instant graceDeadline() {
    Instant stopped = stopTime;
    return (stopped != null ? stopped : Instant.now()).plus(gracePeriod);
  }

  /** Sleeps for {@code delay}, or less if a stop is asked for meanwhile. */
  void sleepUnlessStopped(Duration delay) {
    try {
      stopSignal.get(delay.toNanos(), TimeUnit.NANOSECONDS);
    } catch (TimeoutException | ExecutionException elapsed) {
      // slept the whole delay
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  CompletableFuture<Void> termination() {
    return termination;
  }

  boolean isRunning() {
    synchronized (this) {
      return started && !termination.isDone();
    }
  }

  boolean awaitTermination(Duration timeout) throws InterruptedException {
    try {
      termination.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
      return true;
    } catch (TimeoutException e) {
      return false;
    } catch (ExecutionException e) {
      throw TaskqException.from(e.getCause());
    }
  }

  /** Stops gracefully and waits for the end, without throwing the error that ended it. */
  void close(Duration margin) {
    stop(null);
    Duration wait = Duration.between(Instant.now(), graceDeadline()).plus(margin);
    try {
      termination.exceptionally(error -> null)
          .get(Math.max(0, wait.toNanos()), TimeUnit.NANOSECONDS);
    } catch (InterruptedException e) {
      stop(Duration.ZERO);
      Thread.currentThread().interrupt();
    } catch (ExecutionException | TimeoutException e) {
      stop(Duration.ZERO);
    }
  }
}
