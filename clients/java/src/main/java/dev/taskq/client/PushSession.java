package dev.taskq.client;

import dev.taskq.v1.LeaseExtension;
import dev.taskq.v1.StreamError;
import dev.taskq.v1.StreamSubscription;
import dev.taskq.v1.StreamTasksRequest;
import dev.taskq.v1.StreamTasksResponse;
import dev.taskq.v1.Task;
import dev.taskq.v1.TaskAck;
import dev.taskq.v1.TaskNack;
import dev.taskq.v1.TaskServiceGrpc;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ClientResponseObserver;
import java.lang.System.Logger.Level;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;

/**
 * One StreamTasks stream of a push {@link Worker}, from its subscription to its end.
 *
 * <p>The server's messages bring tasks (each handed to the worker, and its lease extended
 * every interval while held), refused answers (logged; a refused lease is not extended again)
 * and heartbeats (which only prove the stream alive). Answers made within {@code answerDelay}
 * of each other go out in one StreamTasksRequest.
 *
 * <p>The server releases a stream's unanswered tasks when the stream ends, so a task belongs
 * to the session that received it: answers for a task of a session that has ended are dropped
 * (its lease is gone). Ending on purpose ({@link #finish}) sends the pending answers and
 * half-closes; the server then releases whatever the stream still holds, at once, and closes.
 */
final class PushSession implements ClientResponseObserver<StreamTasksRequest, StreamTasksResponse> {
  private static final System.Logger log = System.getLogger(Worker.class.getName());

  private final String queue;
  private final ScheduledExecutorService timer;
  private final Duration answerDelay;
  private final Duration extensionInterval;
  private final Consumer<HeldLease> received;
  private final CompletableFuture<Throwable> ended = new CompletableFuture<>();
  /** Every task received and not yet answered, by {@link HeldLease#key()}. */
  private final Map<String, HeldLease> held = new ConcurrentHashMap<>();

  /** Guards the stream's outbound side and the answers waiting to go out. */
  private final Object sendLock = new Object();
  private ClientCallStreamObserver<StreamTasksRequest> requests;
  private List<TaskAck> acks = new ArrayList<>();
  private List<TaskNack> nacks = new ArrayList<>();
  private List<LeaseExtension> extensions = new ArrayList<>();
  private ScheduledFuture<?> flushTimer;
  /** False once the stream ended or is being ended: answers are dropped. */
  private volatile boolean open = true;
  private volatile boolean heardFromServer;

  PushSession(String queue, ScheduledExecutorService timer, Duration answerDelay,
      Duration extensionInterval, Consumer<HeldLease> received) {
    this.queue = queue;
    this.timer = timer;
    this.answerDelay = answerDelay;
    this.extensionInterval = extensionInterval;
    this.received = received;
  }

  /** Opens the stream and subscribes. */
  void start(Channel channel, int maxOutstanding) {
    ClientCalls.asyncBidiStreamingCall(
        channel.newCall(TaskServiceGrpc.getStreamTasksMethod(), CallOptions.DEFAULT), this);
    StreamTasksRequest subscribe = StreamTasksRequest.newBuilder()
        .setSubscription(StreamSubscription.newBuilder()
            .setQueue(queue)
            .setMaxOutstanding(maxOutstanding))
        .build();
    send(subscribe);
  }

  /** Completes when the stream has ended: with null if the server closed it cleanly. */
  CompletableFuture<Throwable> ended() {
    return ended;
  }

  boolean isOpen() {
    return open;
  }

  /** Whether the server sent anything: the stream worked, however it ends. */
  boolean heardFromServer() {
    return heardFromServer;
  }

  // The stream's inbound side ----------------------------------------------------------------

  @Override
  public void beforeStart(ClientCallStreamObserver<StreamTasksRequest> requestStream) {
    this.requests = requestStream;
  }

  @Override
  public void onNext(StreamTasksResponse response) {
    heardFromServer = true;
    for (Task task : response.getTasksList()) {
      HeldLease lease = new HeldLease(task, this, extensionInterval);
      held.put(lease.key(), lease);
      lease.extendEvery(timer, () -> extend(lease));
      received.accept(lease);
    }
    for (StreamError error : response.getErrorsList()) {
      refused(error);
    }
  }

  @Override
  public void onError(Throwable error) {
    end(error);
  }

  @Override
  public void onCompleted() {
    end(null);
  }

  private void end(Throwable error) {
    open = false;
    held.values().forEach(HeldLease::stopExtending);
    held.clear();
    ended.complete(error);
  }

  private void refused(StreamError error) {
    HeldLease lease = held.get(HeldLease.key(error.getName(), error.getLeaseToken()));
    int code = error.getStatus().getCode();
    if (lease != null && (code == Status.Code.FAILED_PRECONDITION.value()
        || code == Status.Code.NOT_FOUND.value())) {
      // LEASE_LOST or TASK_NOT_FOUND: extending it further is pointless.
      lease.lost = true;
      lease.stopExtending();
    }
    log.log(Level.WARNING, "the server refused an answer for {0}: {1}",
        error.getName().isEmpty() ? "the stream" : error.getName(), error.getStatus().getMessage());
  }

  // Answers ----------------------------------------------------------------------------------

  /** The task is done. Returns false if the answer was dropped (the stream has ended). */
  boolean ack(HeldLease lease) {
    return answer(lease, () -> acks.add(TaskAck.newBuilder()
        .setName(lease.task.getName())
        .setLeaseToken(lease.task.getLeaseToken())
        .build()));
  }

  /** The task failed. Returns false if the answer was dropped (the stream has ended). */
  boolean nack(HeldLease lease, TaskNack nack) {
    return answer(lease, () -> nacks.add(nack));
  }

  private boolean answer(HeldLease lease, Runnable queueAnswer) {
    lease.stopExtending();
    held.remove(lease.key());
    synchronized (sendLock) {
      if (!open) {
        return false;
      }
      // An extension still waiting to go out would only be refused after the answer.
      extensions.removeIf(extension -> extension.getName().equals(lease.task.getName())
          && extension.getLeaseToken().equals(lease.task.getLeaseToken()));
      queueAnswer.run();
      scheduleFlush();
    }
    return true;
  }

  private void extend(HeldLease lease) {
    if (lease.lost || !open) {
      lease.stopExtending();
      return;
    }
    synchronized (sendLock) {
      if (!open) {
        return;
      }
      extensions.add(LeaseExtension.newBuilder()
          .setName(lease.task.getName())
          .setLeaseToken(lease.task.getLeaseToken())
          .setLeaseDuration(ProtoTimes.duration(lease.length))
          .build());
      scheduleFlush();
    }
  }

  private void scheduleFlush() {
    if (flushTimer == null) {
      flushTimer = timer.schedule(this::flush, answerDelay.toNanos(), TimeUnit.NANOSECONDS);
    }
  }

  /** Sends the waiting answers now, in one message. */
  void flush() {
    synchronized (sendLock) {
      if (flushTimer != null) {
        flushTimer.cancel(false);
        flushTimer = null;
      }
      if (acks.isEmpty() && nacks.isEmpty() && extensions.isEmpty()) {
        return;
      }
      StreamTasksRequest answers = StreamTasksRequest.newBuilder()
          .addAllAcks(acks)
          .addAllNacks(nacks)
          .addAllLeaseExtensions(extensions)
          .build();
      acks = new ArrayList<>();
      nacks = new ArrayList<>();
      extensions = new ArrayList<>();
      if (open) {
        send(answers);
      }
    }
  }

  private void send(StreamTasksRequest request) {
    synchronized (sendLock) {
      try {
        requests.onNext(request);
      } catch (RuntimeException broken) {
        // The stream has ended: onError tells the worker, which subscribes again. The server
        // releases this stream's tasks, so these answers are moot.
        log.log(Level.DEBUG, "answers not sent, the stream ended: {0}", broken.toString());
      }
    }
  }

  /**
   * Ends the stream on purpose: sends the waiting answers, half-closes, and waits up to
   * {@code timeout} for the server to release what is left and close; then cancels.
   */
  void finish(Duration timeout) {
    synchronized (sendLock) {
      flush();
      open = false;
      try {
        requests.onCompleted();
      } catch (RuntimeException alreadyEnded) {
        // nothing left to close
      }
    }
    try {
      ended.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
    } catch (TimeoutException e) {
      log.log(Level.WARNING, "the stream on {0} did not end within {1}; cancelling it",
          queue, timeout);
      cancel();
    } catch (InterruptedException e) {
      cancel();
      Thread.currentThread().interrupt();
    } catch (java.util.concurrent.ExecutionException impossible) {
      // ended is only ever completed normally
    }
  }

  /** Drops the stream at once; the server releases every task it held. */
  void cancel() {
    synchronized (sendLock) {
      open = false;
      try {
        requests.cancel("the worker stopped", null);
      } catch (RuntimeException alreadyEnded) {
        // nothing left to cancel
      }
    }
  }
}
