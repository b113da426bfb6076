// `PullWorker`: the lease → work → delete loop over a pull queue.
//
//     const worker = new PullWorker(client, "reports", async (task) => {
//       await render(task.payload);
//     }, { leaseDurationMs: 60_000 });
//     await worker.run(AbortSignal.timeout(3_600_000));
//
// The loop leases at most as many tasks as it has free handler slots (up to `batchSize` per
// LeaseTasks, long-polling `waitMs` when none is ready), runs the handler for each, at most
// `concurrency` at once, and extends a task's lease while its handler runs (see leases.ts).
// A handler that resolves has its task deleted; deletes made within a couple of milliseconds
// of each other go in one BatchDeleteTasks.
//
// A handler that throws has its task's lease released at once (ModifyLease to 0): the task is
// ready for the next lease straight away, with one more attempt counted. Pull queues have no
// backoff of their own, so a task that keeps failing is bounded only by the queue's
// `maxAttempts` (then it fails or moves to the dead-letter queue); throw `RetryLater(ms)` to
// have it leased again only after that delay (its lease is set to end then). Pull queues
// have no permanent failure either: a `PermanentError` is released like any other error (set
// `maxAttempts`, or delete the task yourself).
//
// Stopping (`stop()`, or the `signal` given to `run()`) cancels the long poll at once, lets
// running handlers finish within `gracePeriodMs` and deletes their tasks; tasks whose
// handlers outlast the grace period are released for other workers. (A poll cancelled just
// as the server leased tasks leaves those leased until their lease runs out.)

import type { Task } from "./gen/taskq/v1/task_pb.js";
import type { TaskqClient } from "./client.js";
import { Batcher, type BatchingOptions } from "./batching.js";
import { Code, LeaseLostError, toTaskqError, type TaskqError } from "./errors.js";
import { RetryLater } from "./failures.js";
import { keepLease, type KeptLease } from "./leases.js";
import { queueName } from "./names.js";
import { Backoff, settlesWithin, sleep } from "./retry.js";
import type { Handler } from "./worker.js";

/** Options of a `PullWorker`. */
export interface PullWorkerOptions {
  /** Handlers running at once. Default 8. */
  concurrency?: number;
  /** The lease each task is taken (and extended) for, ms. Default 60,000. */
  leaseDurationMs?: number;
  /** The most tasks per LeaseTasks call (never more than the free slots). Default
   * `concurrency`. */
  batchSize?: number;
  /** How long a LeaseTasks call waits for a task when none is ready, ms (at most 60,000).
   * Default 20,000. */
  waitMs?: number;
  /** Lease only tasks with this tag. */
  tag?: string;
  /** Lease only tasks with the tag of the oldest ready task (one tag per lease call). */
  oldestTag?: boolean;
  /** How long running handlers get to finish when the worker stops, ms. Default 30,000. */
  gracePeriodMs?: number;
  /** Time between lease extensions of a running task, ms. Default: half the lease. */
  extensionIntervalMs?: number;
  /** How deletes are coalesced into BatchDeleteTasks calls. Default: within 2 ms. */
  deleteBatching?: BatchingOptions;
  /** The first wait after a failed LeaseTasks call (server unreachable, queue paused), ms;
   * it doubles up to `retryMaxBackoffMs` (default 10,000). Default 200. */
  retryBackoffMs?: number;
  retryMaxBackoffMs?: number;
  /** Told of what goes wrong without stopping the worker: handler failures (with their task),
   * failed deletes, releases and extensions, failed lease calls. Default: `console.warn`. */
  onError?: (error: unknown, task?: Task) => void;
}

/** Lease failures that no retry can cure: the worker stops and `run()` rejects. */
const FATAL_CODES: ReadonlySet<Code> = new Set([
  Code.NotFound,
  Code.InvalidArgument,
  Code.PermissionDenied,
  Code.Unauthenticated,
  Code.Unimplemented,
]);

interface Running {
  readonly task: Task;
  readonly lease: KeptLease;
  readonly abort: AbortController;
  /** Released by the worker (grace period over): the handler's outcome is dropped. */
  abandoned: boolean;
}

/** Leases tasks of a pull queue and runs a handler for each; see the module comment. */
export class PullWorker {
  /** The pull queue, `queues/{id}`. */
  readonly queue: string;
  readonly #client: TaskqClient;
  readonly #handler: Handler;
  readonly #concurrency: number;
  readonly #leaseDurationMs: number;
  readonly #batchSize: number;
  readonly #waitMs: number;
  readonly #tag: string | undefined;
  readonly #oldestTag: boolean;
  readonly #gracePeriodMs: number;
  readonly #extensionIntervalMs: number | undefined;
  readonly #retry: Backoff;
  readonly #onError: (error: unknown, task?: Task) => void;
  readonly #deletes: Batcher<{ name: string; leaseToken: string }, void>;
  readonly #running = new Map<Promise<void>, Running>();
  /** Answers (deletes, releases) sent and not yet answered. */
  readonly #answers = new Set<Promise<unknown>>();
  #slotFreed: (() => void) | undefined;
  #run: Promise<void> | undefined;
  #stop = new AbortController();
  #graceOverrideMs: number | undefined;

  constructor(client: TaskqClient, queue: string, handler: Handler, options: PullWorkerOptions = {}) {
    this.#concurrency = options.concurrency ?? 8;
    if (!(Number.isInteger(this.#concurrency) && this.#concurrency >= 1)) {
      throw new RangeError(`concurrency must be a positive integer, not ${this.#concurrency}`);
    }
    this.queue = queueName(queue);
    this.#client = client;
    this.#handler = handler;
    this.#leaseDurationMs = options.leaseDurationMs ?? 60_000;
    this.#batchSize = options.batchSize ?? this.#concurrency;
    this.#waitMs = options.waitMs ?? 20_000;
    this.#tag = options.tag;
    this.#oldestTag = options.oldestTag ?? false;
    this.#gracePeriodMs = options.gracePeriodMs ?? 30_000;
    this.#extensionIntervalMs = options.extensionIntervalMs;
    this.#retry = new Backoff(options.retryBackoffMs ?? 200, options.retryMaxBackoffMs ?? 10_000);
    this.#onError = options.onError ?? ((error, task) => console.warn(`taskq pull worker ${this.queue}${task ? ` ${task.name}` : ""}:`, error));
    this.#deletes = new Batcher<{ name: string; leaseToken: string }, void>(
      async (parent, items) =>
        (await client.deleteTasks(parent, items)).map((outcome) =>
          outcome.status === "fulfilled" ? undefined : (outcome.reason as TaskqError),
        ),
      options.deleteBatching,
    );
  }

  /** Handlers running now. */
  get running(): number {
    return this.#running.size;
  }

  /** Runs until stopped (by `stop()` or `signal`); resolves once running handlers have
   * finished (or the grace period ran out) and their answers are sent. Rejects with a
   * TaskqError if leasing fails in a way retrying cannot cure (an unknown queue, a push
   * queue). A stopped worker can be run again. */
  run(signal?: AbortSignal): Promise<void> {
    if (this.#run !== undefined) {
      return Promise.reject(new Error("this PullWorker is already running"));
    }
    const onAbort = () => void this.stop();
    if (signal?.aborted) {
      this.#stop.abort();
    }
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#run = this.#leaseUntilStopped().finally(() => {
      signal?.removeEventListener("abort", onAbort);
      this.#run = undefined;
      this.#stop = new AbortController();
      this.#graceOverrideMs = undefined;
    });
    return this.#run;
  }

  /** Asks the worker to stop; resolves when `run()` has finished. `gracePeriodMs` overrides
   * the worker's for this stop; 0 stops without waiting (running tasks are released). */
  async stop(gracePeriodMs?: number): Promise<void> {
    if (gracePeriodMs !== undefined) {
      this.#graceOverrideMs = gracePeriodMs;
    }
    this.#stop.abort();
    this.#slotFreed?.();
    await this.#run?.catch(() => {});
  }

  async #leaseUntilStopped(): Promise<void> {
    const stop = this.#stop.signal;
    try {
      while (!stop.aborted) {
        while (this.#running.size >= this.#concurrency && !stop.aborted) {
          await new Promise<void>((resolve) => (this.#slotFreed = resolve));
        }
        if (stop.aborted) {
          break;
        }
        let tasks: Task[];
        try {
          tasks = await this.#client.leaseTasks(this.queue, {
            leaseDurationMs: this.#leaseDurationMs,
            maxTasks: Math.min(this.#concurrency - this.#running.size, this.#batchSize),
            tag: this.#tag,
            oldestTag: this.#oldestTag,
            waitMs: this.#waitMs,
            signal: stop,
          });
          this.#retry.reset();
        } catch (error) {
          if (stop.aborted) {
            break;
          }
          const failure = toTaskqError(error);
          if (FATAL_CODES.has(failure.code) || failure.reason === "WRONG_QUEUE_TYPE") {
            throw failure;
          }
          this.#onError(failure);
          await sleep(this.#retry.next(), stop);
          continue;
        }
        for (const task of tasks) {
          if (stop.aborted) {
            this.#answer(this.#client.releaseTask(task), task); // leased as the worker stopped
          } else {
            this.#start(task);
          }
        }
      }
    } finally {
      await this.#letHandlersFinish();
      await this.#deletes.flush();
      while (this.#answers.size > 0) {
        await Promise.all([...this.#answers]);
      }
    }
  }

  #start(task: Task): void {
    const abort = new AbortController();
    const entry: Running = {
      task,
      abort,
      abandoned: false,
      lease: keepLease(this.#leaseDurationMs, this.#extensionIntervalMs, async () => {
        try {
          await this.#client.modifyLease(task, this.#leaseDurationMs);
          return true;
        } catch (error) {
          this.#onError(error, task);
          if (error instanceof LeaseLostError || (error as TaskqError).code === Code.NotFound) {
            abort.abort(error); // another worker may have it now
            return false;
          }
          return true; // a passing failure: try again at the next interval
        }
      }),
    };
    const running: Promise<void> = this.#handle(entry).finally(() => {
      this.#running.delete(running);
      this.#slotFreed?.();
    });
    this.#running.set(running, entry);
  }

  async #handle(entry: Running): Promise<void> {
    const { task } = entry;
    let failure: unknown;
    let failed = false;
    try {
      await this.#handler(task, { signal: entry.abort.signal });
    } catch (error) {
      failed = true;
      failure = error;
    }
    entry.lease.release();
    if (entry.abandoned || entry.abort.signal.aborted) {
      return; // released by the worker, or the lease was lost: nothing to answer
    }
    if (!failed) {
      this.#answer(this.#deletes.add(this.queue, { name: task.name, leaseToken: task.leaseToken }), task);
      return;
    }
    this.#onError(failure, task);
    const delayMs = failure instanceof RetryLater ? failure.delayMs : 0;
    this.#answer(this.#client.modifyLease(task, delayMs), task);
  }

  /** Keeps track of an answer until it is done; its failure goes to onError. */
  #answer(answer: Promise<unknown>, task: Task): void {
    const tracked: Promise<unknown> = answer
      .catch((error) => this.#onError(error, task))
      .finally(() => this.#answers.delete(tracked));
    this.#answers.add(tracked);
  }

  /** Waits for running handlers up to the grace period, then releases their tasks. */
  async #letHandlersFinish(): Promise<void> {
    const deadline = Date.now() + (this.#graceOverrideMs ?? this.#gracePeriodMs);
    while (this.#running.size > 0) {
      const left = deadline - Date.now();
      if (left <= 0) {
        break;
      }
      await settlesWithin(Promise.all([...this.#running.keys()]), left);
    }
    for (const entry of this.#running.values()) {
      entry.abandoned = true;
      entry.lease.release();
      entry.abort.abort(new Error("the worker stopped: the grace period ran out"));
      this.#answer(this.#client.releaseTask(entry.task), entry.task);
    }
  }
}
