package dev.taskq.client;

import java.time.Duration;
import java.util.Objects;

/**
 * How calls made close together are coalesced into one batch call: {@code createTaskAsync}
 * calls into {@code BatchCreateTasks} (per queue), a pull worker's deletes into
 * {@code BatchDeleteTasks}.
 *
 * <p>A batch goes out when {@code maxDelay} has passed since its first item, when it holds
 * {@code maxItems} items, or when the next item would take it past {@code maxBytes} (a single
 * larger item still goes, alone). Every RPC costs the server about as much as a hundred batch
 * items, so a couple of milliseconds of delay buys a lot of throughput under load.
 *
 * @param maxDelay how long the first call of a batch waits for others; zero turns coalescing
 *     off (each call is its own RPC)
 * @param maxItems items per batch, 1 to 1000
 * @param maxBytes encoded bytes of the items of one batch; the server refuses messages above
 *     its limit (32 MiB by default)
 */
public record BatchSettings(Duration maxDelay, int maxItems, long maxBytes) {

  /** The most items the server takes in one batch call. */
  public static final int MAX_ITEMS = 1000;

  /** 2 ms, 500 items, 16 MiB. */
  public static final BatchSettings DEFAULT =
      new BatchSettings(Duration.ofMillis(2), 500, 16L * 1024 * 1024);

  /** Every call is sent on its own, at once. */
  public static final BatchSettings DISABLED = DEFAULT.withMaxDelay(Duration.ZERO);

  public BatchSettings {
    Objects.requireNonNull(maxDelay, "maxDelay");
    if (maxDelay.isNegative() || maxDelay.compareTo(Duration.ofSeconds(10)) > 0) {
      throw new IllegalArgumentException("maxDelay is 0 to 10 seconds, not " + maxDelay);
    }
    if (maxItems < 1 || maxItems > MAX_ITEMS) {
      throw new IllegalArgumentException("maxItems is 1 to " + MAX_ITEMS + ", not " + maxItems);
    }
    if (maxBytes < 1) {
      throw new IllegalArgumentException("maxBytes must be positive, not " + maxBytes);
    }
  }

  /** Whether calls are coalesced at all. */
  public boolean isEnabled() {
    return !maxDelay.isZero();
  }

  public BatchSettings withMaxDelay(Duration maxDelay) {
    return new BatchSettings(maxDelay, maxItems, maxBytes);
  }

  public BatchSettings withMaxItems(int maxItems) {
    return new BatchSettings(maxDelay, maxItems, maxBytes);
  }

  public BatchSettings withMaxBytes(long maxBytes) {
    return new BatchSettings(maxDelay, maxItems, maxBytes);
  }
}
