package dev.taskq.client;

import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import java.util.concurrent.CompletableFuture;

/**
 * The future of one asynchronous unary call: completes with the response, or exceptionally
 * with a {@link TaskqException}; cancelling it cancels the call.
 */
final class UnaryFuture<Q, S> extends CompletableFuture<S>
    implements ClientResponseObserver<Q, S> {
  private volatile ClientCallStreamObserver<Q> call;
  private S response;

  @Override
  public void beforeStart(ClientCallStreamObserver<Q> requestStream) {
    this.call = requestStream;
  }

  @Override
  public void onNext(S value) {
    response = value;
  }

  @Override
  public void onError(Throwable error) {
    completeExceptionally(TaskqException.from(error));
  }

  @Override
  public void onCompleted() {
    complete(response);
  }

  @Override
  public boolean cancel(boolean mayInterruptIfRunning) {
    boolean cancelled = super.cancel(mayInterruptIfRunning);
    ClientCallStreamObserver<Q> started = call;
    if (cancelled && started != null) {
      started.cancel("cancelled by the caller", null);
    }
    return cancelled;
  }
}
