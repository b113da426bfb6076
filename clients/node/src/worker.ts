// `Worker`: runs a handler for each task of a push queue, delivered over StreamTasks.
//
//     const worker = new Worker(client, "emails", async (task, { signal }) => {
//       await deliver(JSON.parse(new TextDecoder().decode(task.payload)), { signal });
//     }, { concurrency: 8 });
//     process.once("SIGTERM", () => worker.stop());
//     await worker.run();
//
// The worker subscribes to the queue and runs the handler on each task it receives, at most
// `concurrency` at once; the server sends up to `maxOutstanding` ahead, which wait in a
// backlog. While a task is held (waiting or running) its lease is extended (see leases.ts).
// A handler that resolves acks its task; one that throws nacks it with `Name: message` (see
// failures.ts for `PermanentError` and `RetryLater`). Answers of one tick share one message.
//
// When the stream fails (the server restarts, the network drops) the worker subscribes again
// with exponential backoff. The server has released the old stream's tasks by then: handlers
// still running for them see their `signal` abort and their answers are dropped; each such
// task runs again (delivery is at least once: make handlers idempotent). Errors no retry can
// cure (the queue does not exist or is a pull queue) end `run()` with a TaskqError.
//
// Stopping (`stop()`, or the `signal` given to `run()`): no new task starts; running handlers
// get `gracePeriodMs` to finish and their answers are sent; then the stream ends and the
// server releases the tasks received but not started, at once, for other workers (each such
// release counts as an attempt). A handler still running after the grace period has its
// `signal` aborted, and its task is released with the stream.

import type { Task } from "./gen/taskq/v1/task_pb.js";
import type { StreamError } from "./gen/taskq/v1/task_service_pb.js";
import type { TaskqClient } from "./client.js";
import { Code, statusToError, TaskqError, toTaskqError } from "./errors.js";
import { PermanentError, RetryLater } from "./failures.js";
import { keepLease, leaseLengthMs, type KeptLease } from "./leases.js";
import { queueName } from "./names.js";
import { Backoff, settlesWithin, sleep } from "./retry.js";
import type { TaskStream } from "./stream.js";

/** What a handler gets besides its task. */
export interface HandlerContext {
  /** Aborts when the worker no longer holds the task: its lease was lost (the stream ended,
   * or the server refused an extension), or the grace period of a stop ran out. The reason
   * says which. A handler that sees it can stop: its answer will be dropped anyway. */
  readonly signal: AbortSignal;
}

/** A task's handler: resolves when the task is done, throws (rejects) when it failed. */
export type Handler = (task: Task, context: HandlerContext) => unknown;

/** Options of a `Worker`. */
export interface WorkerOptions {
  /** Handlers running at once. Default 8. */
  concurrency?: number;
  /** Tasks the server may send ahead of the answers (running plus waiting to start), 1 to
   * 10,000. Default twice `concurrency`, so a freed slot never waits for a round trip. */
  maxOutstanding?: number;
  /** How long running handlers get to finish when the worker stops, ms. Default 30,000. */
  gracePeriodMs?: number;
  /** Time between lease extensions of a held task, ms. Default: half its lease. */
  extensionIntervalMs?: number;
  /** How long an answer waits for others to share its stream message, ms. Default 0: the
   * answers of one tick of the event loop share a message. */
  answerDelayMs?: number;
  /** The first wait before subscribing again after a stream failed, ms; it doubles up to
   * `reconnectMaxBackoffMs` (default 10,000) and starts over once a stream works. Default 100. */
  reconnectBackoffMs?: number;
  reconnectMaxBackoffMs?: number;
  /** Told of what goes wrong without stopping the worker: handler failures (with their
   * task), refused answers, stream failures before a reconnect. Default: `console.warn`. */
  onError?: (error: unknown, task?: Task) => void;
}

/** Stream failures that no retry can cure: the worker stops and `run()` rejects. */
export const FATAL_CODES: ReadonlySet<Code> = new Set([
  Code.NotFound,
  Code.FailedPrecondition,
  Code.InvalidArgument,
  Code.PermissionDenied,
  Code.Unauthenticated,
  Code.Unimplemented,
]);

/** After asking the server to end the stream, how long to wait for it to close, ms. */
export const END_OF_STREAM_TIMEOUT_MS = 10_000;

/** A task this worker holds: received on a stream, not yet answered. */
interface Held {
  readonly task: Task;
  readonly session: Session;
  readonly lease: KeptLease;
  readonly abort: AbortController;
}

/** One subscription: its stream and the tasks received on it. */
interface Session {
  readonly stream: TaskStream;
  readonly held: Map<string, Held>;
  readonly backlog: Held[];
  heard: boolean;
}

/** Runs a handler for every task of a push queue; see the module comment. */
export class Worker {
  /** The push queue, `queues/{id}`. */
  readonly queue: string;
  readonly #client: TaskqClient;
  readonly #handler: Handler;
  readonly #concurrency: number;
  readonly #maxOutstanding: number;
  readonly #gracePeriodMs: number;
  readonly #extensionIntervalMs: number | undefined;
  readonly #answerDelayMs: number;
  readonly #reconnect: Backoff;
  readonly #onError: (error: unknown, task?: Task) => void;
  readonly #running = new Set<Promise<void>>();
  #session: Session | undefined;
  #run: Promise<void> | undefined;
  #stop = new AbortController();
  #graceOverrideMs: number | undefined;
  /** When the grace period of this run's stop ends (Date.now() ms), once it has begun. */
  #graceDeadline: number | undefined;

  constructor(client: TaskqClient, queue: string, handler: Handler, options: WorkerOptions = {}) {
    this.#concurrency = options.concurrency ?? 8;
    if (!(Number.isInteger(this.#concurrency) && this.#concurrency >= 1)) {
      throw new RangeError(`concurrency must be a positive integer, not ${this.#concurrency}`);
    }
    this.queue = queueName(queue);
    this.#client = client;
    this.#handler = handler;
    this.#maxOutstanding = options.maxOutstanding ?? 2 * this.#concurrency;
    this.#gracePeriodMs = options.gracePeriodMs ?? 30_000;
    this.#extensionIntervalMs = options.extensionIntervalMs;
    this.#answerDelayMs = options.answerDelayMs ?? 0;
    this.#reconnect = new Backoff(options.reconnectBackoffMs ?? 100, options.reconnectMaxBackoffMs ?? 10_000);
    this.#onError = options.onError ?? ((error, task) => console.warn(`taskq worker ${this.queue}${task ? ` ${task.name}` : ""}:`, error));
  }

  /** Handlers running now. */
  get running(): number {
    return this.#running.size;
  }

  /**
   * Runs until stopped (by `stop()` or `signal`): resolves once running handlers have
   * finished (or the grace period ran out) and the stream has ended. Rejects with a
   * TaskqError if the stream fails in a way retrying cannot cure (an unknown queue, a pull
   * queue). A stopped worker can be run again.
   */
  run(signal?: AbortSignal): Promise<void> {
    if (this.#run !== undefined) {
      return Promise.reject(new Error("this Worker is already running"));
    }
    const onAbort = () => void this.stop();
    if (signal?.aborted) {
      this.#stop.abort();
    }
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#run = this.#subscribeUntilStopped().finally(() => {
      signal?.removeEventListener("abort", onAbort);
      this.#run = undefined;
      // A stopped worker may be run again.
      this.#stop = new AbortController();
      this.#graceOverrideMs = undefined;
      this.#graceDeadline = undefined;
    });
    return this.#run;
  }

  /** Asks the worker to stop (see the module comment); resolves when `run()` has finished.
   * `gracePeriodMs` overrides the worker's for this stop; 0 stops without waiting. Called
   * before `run()`, it makes that run return at once. */
  async stop(gracePeriodMs?: number): Promise<void> {
    if (gracePeriodMs !== undefined) {
      this.#graceOverrideMs = gracePeriodMs;
    }
    this.#stop.abort();
    await this.#run?.catch(() => {});
  }

  // Subscribing -----------------------------------------------------------------------------

  async #subscribeUntilStopped(): Promise<void> {
    const stopped = new Promise<"stopped">((resolve) => {
      if (this.#stop.signal.aborted) resolve("stopped");
      this.#stop.signal.addEventListener("abort", () => resolve("stopped"), { once: true });
    });
    let drained = false;
    try {
      while (!this.#stop.signal.aborted) {
        const session: Session = {
          stream: this.#client.streamTasks(this.queue, {
            maxOutstanding: this.#maxOutstanding,
            answerDelayMs: this.#answerDelayMs,
          }),
          held: new Map(),
          backlog: [],
          heard: false,
        };
        this.#session = session;
        const ended = this.#read(session);
        const first = await Promise.race([ended, stopped]);
        if (first === "stopped") {
          await this.#letHandlersFinish();
          drained = true;
          await this.#endStream(session, ended);
          return;
        }
        if (first !== undefined && FATAL_CODES.has(first.code)) {
          throw first;
        }
        if (session.heard) {
          this.#reconnect.reset();
        }
        const wait = this.#reconnect.next();
        this.#onError(first ?? new Error(`the server ended the stream; subscribing again in ${Math.round(wait)} ms`));
        await sleep(wait, this.#stop.signal);
      }
    } finally {
      this.#session = undefined;
      if (!drained) {
        await this.#letHandlersFinish(); // handlers of a stream that failed, or of none
      }
    }
  }

  /** Reads the stream to its end; resolves with the error it failed with, if any. */
  async #read(session: Session): Promise<TaskqError | undefined> {
    try {
      for await (const message of session.stream) {
        session.heard = true;
        for (const task of message.tasks) {
          this.#received(session, task);
        }
        for (const error of message.errors) {
          this.#refused(session, error);
        }
      }
      return undefined;
    } catch (error) {
      return toTaskqError(error);
    } finally {
      // The server releases whatever the stream held: the backlog is gone, and handlers
      // still running have lost their leases.
      session.backlog.length = 0;
      for (const held of session.held.values()) {
        this.#drop(held, new Error("the stream ended: the server released the task"));
      }
    }
  }

  async #endStream(session: Session, ended: Promise<unknown>): Promise<void> {
    session.stream.end();
    if (!(await settlesWithin(ended, END_OF_STREAM_TIMEOUT_MS))) {
      this.#onError(new Error("the server did not end the stream in time; cancelling it"));
      session.stream.cancel();
      await ended;
    }
  }

  // Tasks -----------------------------------------------------------------------------------

  #received(session: Session, task: Task): void {
    const lengthMs = leaseLengthMs(task);
    const held: Held = {
      task,
      session,
      abort: new AbortController(),
      lease: keepLease(lengthMs, this.#extensionIntervalMs, () => {
        if (!session.stream.open || !session.held.has(key(task))) {
          return false;
        }
        session.stream.extend(task, lengthMs);
        return true;
      }),
    };
    session.held.set(key(task), held);
    session.backlog.push(held);
    this.#startFromBacklog();
  }

  #refused(session: Session, refusal: StreamError): void {
    const error = refusal.status
      ? statusToError(refusal.status)
      : new TaskqError({ code: Code.Unknown, message: `the server refused an answer for ${refusal.name}` });
    const held = session.held.get(`${refusal.name}\n${refusal.leaseToken}`);
    if (held !== undefined && error.code === Code.FailedPrecondition) {
      this.#drop(held, error); // LEASE_LOST: another worker may have it now
    }
    this.#onError(error, held?.task);
  }

  /** Starts backlog tasks of the current stream while slots are free and not stopping. */
  #startFromBacklog(): void {
    const session = this.#session;
    while (session !== undefined && !this.#stop.signal.aborted && this.#running.size < this.#concurrency) {
      const held = session.backlog.shift();
      if (held === undefined) {
        return;
      }
      if (session.held.get(key(held.task)) !== held) {
        continue; // dropped while waiting
      }
      const running: Promise<void> = this.#handle(held).finally(() => {
        this.#running.delete(running);
        this.#startFromBacklog();
      });
      this.#running.add(running);
    }
  }

  async #handle(held: Held): Promise<void> {
    const { task, session } = held;
    let failure: unknown;
    let failed = false;
    try {
      await this.#handler(task, { signal: held.abort.signal });
    } catch (error) {
      failed = true;
      failure = error;
    }
    held.lease.release();
    if (session.held.get(key(task)) !== held || !session.stream.open) {
      return; // the lease was lost meanwhile: the answer is moot
    }
    session.held.delete(key(task));
    if (!failed) {
      session.stream.ack(task);
      return;
    }
    if (failure instanceof RetryLater) {
      session.stream.nack(task, { error: failure, retryDelayMs: failure.delayMs });
    } else if (failure instanceof PermanentError) {
      session.stream.nack(task, { error: failure, permanent: true });
    } else {
      session.stream.nack(task, { error: failure });
    }
    this.#onError(failure, task);
  }

  /** Forgets a held task: no extensions, no answer; its handler's signal aborts. */
  #drop(held: Held, reason: unknown): void {
    held.lease.release();
    if (held.session.held.get(key(held.task)) === held) {
      held.session.held.delete(key(held.task));
    }
    held.abort.abort(reason);
  }

  /** Waits for running handlers up to the grace period (one per run, however often this is
   * called), then aborts their signals. */
  async #letHandlersFinish(): Promise<void> {
    if (this.#running.size === 0) {
      return;
    }
    this.#graceDeadline ??= Date.now() + (this.#graceOverrideMs ?? this.#gracePeriodMs);
    const deadline = this.#graceDeadline;
    while (this.#running.size > 0) {
      const left = deadline - Date.now();
      if (left <= 0) {
        break;
      }
      await settlesWithin(Promise.all([...this.#running]), left);
    }
    if (this.#running.size > 0) {
      this.#onError(new Error(`${this.#running.size} handlers still running after the grace period; their tasks are released`));
      const session = this.#session;
      for (const held of session?.held.values() ?? []) {
        this.#drop(held, new Error("the worker stopped: the grace period ran out"));
      }
    }
  }
}

function key(task: { name: string; leaseToken: string }): string {
  return `${task.name}\n${task.leaseToken}`;
}
