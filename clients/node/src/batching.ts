// Coalescing: calls made close together become one batch RPC.
//
// Every RPC costs the server about as much as a hundred items of a batch, so the client
// gathers `createTask` calls made within a couple of milliseconds into one BatchCreateTasks
// per queue (and the pull worker does the same with its deletes), as Pub/Sub's publisher does.
// Each caller still gets its own Promise, resolved or rejected with its own item's outcome.
//
// A `Batcher` knows nothing about tasks: it is given `send(key, items)`, which makes one call
// for the items of one key (a queue) and returns one outcome per item, a result or an Error
// for an item that was refused. If `send` rejects, every item of that batch rejects with its
// error. A batch goes out when the first of these happens:
//
// - `maxDelayMs` has passed since its first item,
// - it holds `maxItems` items, or the next item would take it past `maxBytes`,
// - the batcher is flushed or closed.

/** How calls are coalesced into batch calls. */
export interface BatchingOptions {
  /** How long a call waits for others to share its batch, counted from the batch's first
   * call, ms. Default 2. 0 still coalesces the calls made in the same tick of the event loop. */
  maxDelayMs?: number;
  /** Items per batch, 1 to 1000. Default 500. */
  maxItems?: number;
  /** Approximate request bytes per batch (the server refuses messages above 32 MiB). A single
   * larger item still goes, alone. Default 16 MiB. */
  maxBytes?: number;
}

/** The most items the server takes in one batch call. */
export const MAX_BATCH_ITEMS = 1000;

/** One call for the items of one key, with one outcome per item, in order. */
export type SendBatch<Item, Result> = (key: string, items: Item[]) => Promise<(Result | Error)[]>;

interface Pending<Result> {
  resolve(result: Result): void;
  reject(error: unknown): void;
}

class Batch<Item, Result> {
  readonly items: Item[] = [];
  readonly callers: Pending<Result>[] = [];
  bytes = 0;
  /** Stops the timer that sends the batch. */
  cancelTimer: () => void = () => {};

  constructor(readonly key: string) {}
}

/** Gathers items per key and sends them in batches; see the module comment. */
export class Batcher<Item, Result> {
  readonly #send: SendBatch<Item, Result>;
  readonly #size: (item: Item) => number;
  readonly #maxDelayMs: number;
  readonly #maxItems: number;
  readonly #maxBytes: number;
  readonly #open = new Map<string, Batch<Item, Result>>();
  readonly #inFlight = new Set<Promise<void>>();
  #closed = false;

  constructor(send: SendBatch<Item, Result>, options: BatchingOptions = {}, size: (item: Item) => number = () => 0) {
    this.#send = send;
    this.#size = size;
    this.#maxDelayMs = options.maxDelayMs ?? 2;
    this.#maxItems = options.maxItems ?? 500;
    this.#maxBytes = options.maxBytes ?? 16 * 1024 * 1024;
    if (!(this.#maxDelayMs >= 0 && this.#maxDelayMs <= 10_000)) {
      throw new RangeError(`maxDelayMs is 0 to 10000, not ${this.#maxDelayMs}`);
    }
    if (!(Number.isInteger(this.#maxItems) && this.#maxItems >= 1 && this.#maxItems <= MAX_BATCH_ITEMS)) {
      throw new RangeError(`maxItems is 1 to ${MAX_BATCH_ITEMS}, not ${this.#maxItems}`);
    }
    if (!(this.#maxBytes > 0)) {
      throw new RangeError(`maxBytes must be positive, not ${this.#maxBytes}`);
    }
  }

  /** Adds an item to the open batch of `key`; resolves with its own outcome. */
  add(key: string, item: Item): Promise<Result> {
    if (this.#closed) {
      return Promise.reject(new Error("the batcher is closed"));
    }
    const size = this.#size(item);
    let batch = this.#open.get(key);
    if (batch !== undefined && batch.items.length > 0 && batch.bytes + size > this.#maxBytes) {
      this.#dispatch(batch);
      batch = undefined;
    }
    if (batch === undefined) {
      const opened = new Batch<Item, Result>(key);
      if (this.#maxDelayMs > 0) {
        const timer = setTimeout(() => this.#dispatch(opened), this.#maxDelayMs);
        opened.cancelTimer = () => clearTimeout(timer);
      } else {
        const immediate = setImmediate(() => this.#dispatch(opened));
        opened.cancelTimer = () => clearImmediate(immediate);
      }
      this.#open.set(key, opened);
      batch = opened;
    }
    const promise = new Promise<Result>((resolve, reject) => batch.callers.push({ resolve, reject }));
    batch.items.push(item);
    batch.bytes += size;
    if (batch.items.length >= this.#maxItems) {
      this.#dispatch(batch);
    }
    return promise;
  }

  /** Sends every open batch now and waits until all batches sent so far are answered. */
  async flush(): Promise<void> {
    for (const batch of [...this.#open.values()]) {
      this.#dispatch(batch);
    }
    while (this.#inFlight.size > 0) {
      await Promise.all([...this.#inFlight]);
    }
  }

  /** Flushes, then refuses further items. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
  }

  #dispatch(batch: Batch<Item, Result>): void {
    if (this.#open.get(batch.key) !== batch) {
      return; // already sent
    }
    this.#open.delete(batch.key);
    batch.cancelTimer();
    const sending = this.#sendBatch(batch);
    this.#inFlight.add(sending);
    void sending.finally(() => this.#inFlight.delete(sending));
  }

  async #sendBatch(batch: Batch<Item, Result>): Promise<void> {
    let outcomes: (Result | Error)[];
    try {
      outcomes = await this.#send(batch.key, batch.items);
    } catch (error) {
      for (const caller of batch.callers) {
        caller.reject(error);
      }
      return;
    }
    batch.callers.forEach((caller, index) => {
      const outcome = outcomes[index];
      if (index >= outcomes.length) {
        caller.reject(new Error(`the batch call answered ${outcomes.length} of ${batch.items.length} items`));
      } else if (outcome instanceof Error) {
        caller.reject(outcome);
      } else {
        caller.resolve(outcome as Result);
      }
    });
  }
}
