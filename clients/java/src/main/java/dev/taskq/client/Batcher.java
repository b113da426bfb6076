package dev.taskq.client;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.ToLongFunction;

/**
 * Coalescing: items submitted close together become one batch call per key (a queue), as
 * Pub/Sub's publisher does; each submitter still gets its own result or its own error.
 *
 * <p>A batcher knows nothing about tasks: its {@link Sender} makes one call for the items of
 * one key and answers one {@link ItemResult} per item. A failure of the whole call fails every
 * item of that batch. A batch goes out when the first of these happens: {@code maxDelay} has
 * passed since its first item; it holds {@code maxItems}; the next item would take it past
 * {@code maxBytes}; the batcher is flushed or closed. Timers run on the given scheduler; the
 * call itself is asynchronous, so any number of batches may be in flight.
 */
final class Batcher<I, R> {

  /** Makes one batch call. */
  @FunctionalInterface
  interface Sender<I, R> {
    CompletableFuture<List<ItemResult<R>>> send(String key, List<I> items);
  }

  private final Sender<I, R> sender;
  private final BatchSettings settings;
  private final ToLongFunction<I> size;
  private final ScheduledExecutorService timer;
  private final Map<String, Batch> pending = new HashMap<>();
  private final Set<CompletableFuture<Void>> inFlight = ConcurrentHashMap.newKeySet();
  private boolean closed;

  Batcher(Sender<I, R> sender, BatchSettings settings, ToLongFunction<I> size,
      ScheduledExecutorService timer) {
    this.sender = sender;
    this.settings = settings;
    this.size = size;
    this.timer = timer;
  }

  /** Adds an item to its key's batch; the future ends with the item's own outcome. */
  CompletableFuture<R> submit(String key, I item) {
    CompletableFuture<R> future = new CompletableFuture<>();
    long bytes = size.applyAsLong(item);
    List<Batch> due = new ArrayList<>(2);
    synchronized (this) {
      if (closed) {
        throw new IllegalStateException("the client is closed");
      }
      Batch batch = pending.get(key);
      if (batch != null && !batch.fits(bytes)) {
        pending.remove(key);
        due.add(batch);
        batch = null;
      }
      if (batch == null) {
        Batch fresh = new Batch(key);
        fresh.timer = timer.schedule(
            () -> expire(fresh), settings.maxDelay().toNanos(), TimeUnit.NANOSECONDS);
        pending.put(key, fresh);
        batch = fresh;
      }
      batch.add(item, future, bytes);
      if (batch.full()) {
        pending.remove(key);
        due.add(batch);
      }
    }
    due.forEach(this::send);
    return future;
  }

  /**
   * Sends every pending batch now; completes once every batch sent so far is answered
   * (whatever the answers).
   */
  CompletableFuture<Void> flush() {
    List<Batch> due;
    synchronized (this) {
      due = new ArrayList<>(pending.values());
      pending.clear();
    }
    due.forEach(this::send);
    return CompletableFuture.allOf(inFlight.toArray(CompletableFuture[]::new));
  }

  /** Refuses new items, then {@link #flush()}. */
  CompletableFuture<Void> close() {
    synchronized (this) {
      closed = true;
    }
    return flush();
  }

  private void expire(Batch batch) {
    synchronized (this) {
      if (pending.get(batch.key) != batch) {
        return; // already sent: it filled up, or was flushed
      }
      pending.remove(batch.key);
    }
    send(batch);
  }

  private void send(Batch batch) {
    batch.timer.cancel(false);
    CompletableFuture<List<ItemResult<R>>> call;
    try {
      call = sender.send(batch.key, List.copyOf(batch.items));
    } catch (RuntimeException error) {
      call = CompletableFuture.failedFuture(error);
    }
    // In flight until every submitter's future has its outcome.
    CompletableFuture<Void> settled = new CompletableFuture<>();
    inFlight.add(settled);
    call.whenComplete((results, error) -> {
      try {
        settle(batch.futures, results, error);
      } finally {
        inFlight.remove(settled);
        settled.complete(null);
      }
    });
  }

  private void settle(List<CompletableFuture<R>> futures, List<ItemResult<R>> results,
      Throwable error) {
    if (error == null && results.size() != futures.size()) {
      error = new IllegalStateException(
          "the server answered " + results.size() + " results for " + futures.size() + " items");
    }
    if (error != null) {
      TaskqException failure = TaskqException.from(error);
      futures.forEach(future -> future.completeExceptionally(failure));
      return;
    }
    for (int i = 0; i < futures.size(); i++) {
      ItemResult<R> result = results.get(i);
      if (result.isOk()) {
        futures.get(i).complete(result.value());
      } else {
        futures.get(i).completeExceptionally(result.error());
      }
    }
  }

  /** The items of one key gathered so far, and the futures of their submitters. */
  private final class Batch {
    final String key;
    final List<I> items = new ArrayList<>();
    final List<CompletableFuture<R>> futures = new ArrayList<>();
    long bytes;
    ScheduledFuture<?> timer;

    Batch(String key) {
      this.key = key;
    }

    boolean fits(long itemBytes) {
      return items.isEmpty()
          || (items.size() < settings.maxItems() && bytes + itemBytes <= settings.maxBytes());
    }

    void add(I item, CompletableFuture<R> future, long itemBytes) {
      items.add(item);
      futures.add(future);
      bytes += itemBytes;
    }

    boolean full() {
      return items.size() >= settings.maxItems() || bytes >= settings.maxBytes();
    }
  }
}
