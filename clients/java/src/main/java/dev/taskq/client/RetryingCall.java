package dev.taskq.client;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.Context;
import io.grpc.MethodDescriptor;
import io.grpc.stub.ClientCalls;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

/**
 * One asynchronous unary call and its retries (see {@link CallRetry}): completes with the
 * response, or exceptionally with a {@link TaskqException}; cancelling it cancels the attempt
 * in progress, or the next one. Every attempt runs in the caller's {@link Context}: cancelling
 * it cancels the call too.
 *
 * <p>Waits between attempts run on the JDK's shared delayed executor rather than the client's
 * timer, so that closing the client never strands a call between two attempts: the attempt due
 * after the wait sees the client closed and gives up with the last failure.
 */
final class RetryingCall<Q, S> extends CompletableFuture<S> {
  private final Channel channel;
  private final MethodDescriptor<Q, S> method;
  /** The same message on every attempt: a create keeps its request_id. */
  private final Q request;
  /** With the call's deadline, which covers every attempt. */
  private final CallOptions options;
  /** Null when the call is not retried. */
  private final RetryBackoff backoff;
  /** Runs before each retry (the client makes its channel reconnect at once). */
  private final Runnable beforeRetry;
  private final BooleanSupplier clientClosed;
  /** The caller's, current when the call was made. */
  private final Context context = Context.current();
  private volatile UnaryFuture<Q, S> attempt;

  RetryingCall(Channel channel, MethodDescriptor<Q, S> method, Q request, CallOptions options,
      RetryBackoff backoff, Runnable beforeRetry, BooleanSupplier clientClosed) {
    this.channel = channel;
    this.method = method;
    this.request = request;
    this.options = options;
    this.backoff = backoff;
    this.beforeRetry = beforeRetry;
    this.clientClosed = clientClosed;
  }

  /** Makes the first attempt; returns this future. */
  RetryingCall<Q, S> start() {
    attempt();
    return this;
  }

  private void attempt() {
    UnaryFuture<Q, S> current = new UnaryFuture<>();
    attempt = current;
    ClientCalls.asyncUnaryCall(channel.newCall(method, options), request, current);
    current.whenComplete((response, error) -> {
      if (error == null) {
        complete(response);
        return;
      }
      TaskqException failure = TaskqException.from(error);
      // A CANCELLED is the caller's own when it cancelled this future or its Context.
      long waitNanos = backoff == null || isDone() || clientClosed.getAsBoolean()
          ? RetryBackoff.GIVE_UP
          : backoff.nextWaitNanos(failure, context.isCancelled());
      if (waitNanos == RetryBackoff.GIVE_UP) {
        completeExceptionally(failure);
        return;
      }
      CompletableFuture.delayedExecutor(waitNanos, TimeUnit.NANOSECONDS).execute(() -> {
        if (isDone()) {
          return; // cancelled meanwhile
        }
        if (clientClosed.getAsBoolean()) {
          completeExceptionally(failure);
          return;
        }
        beforeRetry.run();
        context.run(this::attempt); // gRPC binds a call to the Context current when it is made
      });
    });
  }

  @Override
  public boolean cancel(boolean mayInterruptIfRunning) {
    boolean cancelled = super.cancel(mayInterruptIfRunning);
    UnaryFuture<Q, S> current = attempt;
    if (cancelled && current != null) {
      current.cancel(mayInterruptIfRunning);
    }
    return cancelled;
  }
}
