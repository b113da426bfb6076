// One StreamTasks stream: a push worker's subscription, as an async iterable.
//
//     const stream = client.streamTasks("emails", { maxOutstanding: 16 });
//     for await (const message of stream) {
//       for (const task of message.tasks) stream.ack(task);
//     }
//
// The server sends messages with several `tasks` each (leased to this stream, each with its
// `leaseToken` and `leaseExpireTime`), `errors` for answers it refused (the stream stays
// open), or only a `heartbeatTime` on an idle stream. Answers (`ack`, `nack`, `extend`) are
// queued and go out together: those made in the same tick of the event loop (or within
// `answerDelayMs`) share one StreamTasksRequest.
//
// `end()` sends the queued answers and half-closes the stream: the server then releases the
// tasks this stream still holds, at once, and ends the stream, which ends the iteration.
// `cancel()` drops the stream at once (the server releases the tasks just the same, but
// answers still queued are lost). However it ends, a task belongs to the stream that received
// it: answers for tasks of an ended stream are dropped, since the server has released them.

import type { Client } from "@connectrpc/connect";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  type StreamTasksRequestSchema,
  type StreamTasksResponse,
  type TaskAckSchema,
  type TaskNackSchema,
  type LeaseExtensionSchema,
  TaskService,
} from "./gen/taskq/v1/task_service_pb.js";
import { toTaskqError } from "./errors.js";
import { failureStatus } from "./failures.js";
import { queueName } from "./names.js";

type StreamTasksRequestInit = MessageInitShape<typeof StreamTasksRequestSchema>;

/** A task as answers name it: a Task received on the stream has both fields. */
export interface LeasedTask {
  readonly name: string;
  readonly leaseToken: string;
}

/** Options of `TaskqClient.streamTasks`. */
export interface TaskStreamOptions {
  /** The most tasks the stream may hold unanswered at once, 1 to 10,000. Default: the
   * server's (100). */
  maxOutstanding?: number;
  /** How long an answer waits for others to share its message, ms. Default 0: the answers
   * of one tick of the event loop share a message. */
  answerDelayMs?: number;
  /** Aborting it cancels the stream, as `cancel()` does. */
  signal?: AbortSignal;
}

/** How a task failed, for `TaskStream.nack`. */
export interface NackOptions {
  /** What went wrong: an Error (recorded as `Name: message`) or a message. */
  error?: unknown;
  /** Retry after this delay instead of the retry configuration's backoff, ms. */
  retryDelayMs?: number;
  /** Do not retry: dead-letter the task (or fail it) at once. */
  permanent?: boolean;
}

/** One StreamTasks stream; see the module comment. */
export class TaskStream implements AsyncIterable<StreamTasksResponse> {
  /** The queue, `queues/{id}`. */
  readonly queue: string;
  readonly #requests = new Pushable<StreamTasksRequestInit>();
  readonly #responses: AsyncIterable<StreamTasksResponse>;
  readonly #cancel = new AbortController();
  readonly #answerDelayMs: number;
  #acks: MessageInitShape<typeof TaskAckSchema>[] = [];
  #nacks: MessageInitShape<typeof TaskNackSchema>[] = [];
  #extensions: MessageInitShape<typeof LeaseExtensionSchema>[] = [];
  #cancelFlush: (() => void) | undefined;
  #iterated = false;
  #ended = false;
  #cancelled = false;

  constructor(service: Client<typeof TaskService>, queue: string, options: TaskStreamOptions = {}) {
    this.queue = queueName(queue);
    this.#answerDelayMs = options.answerDelayMs ?? 0;
    this.#requests.push({ subscription: { queue: this.queue, maxOutstanding: options.maxOutstanding ?? 0 } });
    options.signal?.addEventListener("abort", () => this.cancel(), { once: true });
    const signal = options.signal ? AbortSignal.any([options.signal, this.#cancel.signal]) : this.#cancel.signal;
    this.#responses = service.streamTasks(this.#requests, { signal });
  }

  /** Whether answers are still accepted: neither `end()` nor `cancel()` was called, and the
   * stream has not ended. */
  get open(): boolean {
    return !this.#ended;
  }

  /** Queues an ack: the task is done and will be deleted. */
  ack(task: LeasedTask): void {
    if (this.#accepting()) {
      this.#acks.push({ name: task.name, leaseToken: task.leaseToken });
      this.#schedule();
    }
  }

  /** Queues a nack: the task failed and will be retried, or dead-lettered. */
  nack(task: LeasedTask, options: NackOptions = {}): void {
    if (this.#accepting()) {
      this.#nacks.push({
        name: task.name,
        leaseToken: task.leaseToken,
        error: options.error === undefined ? undefined : failureStatus(options.error),
        retryDelay: options.retryDelayMs === undefined ? undefined : durationFromMs(options.retryDelayMs),
        permanent: options.permanent ?? false,
      });
      this.#schedule();
    }
  }

  /** Queues a lease extension: the task stays leased to this stream `leaseDurationMs` from
   * when the server applies it (more than 0, at most 24 hours). */
  extend(task: LeasedTask, leaseDurationMs: number): void {
    if (this.#accepting()) {
      this.#extensions.push({
        name: task.name,
        leaseToken: task.leaseToken,
        leaseDuration: durationFromMs(leaseDurationMs),
      });
      this.#schedule();
    }
  }

  /** Sends the queued answers now, in one message. */
  flush(): void {
    this.#cancelFlush?.();
    this.#cancelFlush = undefined;
    if (this.#acks.length + this.#nacks.length + this.#extensions.length === 0) {
      return;
    }
    this.#requests.push({ acks: this.#acks, nacks: this.#nacks, leaseExtensions: this.#extensions });
    this.#acks = [];
    this.#nacks = [];
    this.#extensions = [];
  }

  /** Sends the queued answers and half-closes the stream: the server releases the tasks
   * still held and ends the stream. Iterate to the end (or race it with a timeout) to wait. */
  end(): void {
    if (!this.#ended) {
      this.flush();
      this.#ended = true;
      this.#requests.end();
    }
  }

  /** Drops the stream at once; the server releases every task it held. */
  cancel(): void {
    this.#cancelled = true;
    this.#ended = true;
    this.#cancelFlush?.();
    this.#requests.end();
    this.#cancel.abort();
  }

  /** The server's messages until the stream ends; a failed stream rejects with a TaskqError.
   * A stream can be iterated once. */
  async *[Symbol.asyncIterator](): AsyncIterator<StreamTasksResponse> {
    if (this.#iterated) {
      throw new Error("a TaskStream can be iterated only once");
    }
    this.#iterated = true;
    try {
      yield* this.#responses;
    } catch (error) {
      if (!this.#cancelled) {
        throw toTaskqError(error);
      }
      // cancel() was called or the signal aborted: the iteration just ends.
    } finally {
      this.#ended = true;
      this.#cancelFlush?.();
      this.#requests.end();
    }
  }

  #accepting(): boolean {
    return !this.#ended;
  }

  #schedule(): void {
    if (this.#cancelFlush !== undefined) {
      return;
    }
    if (this.#answerDelayMs > 0) {
      const timer = setTimeout(() => this.flush(), this.#answerDelayMs);
      this.#cancelFlush = () => clearTimeout(timer);
    } else {
      const immediate = setImmediate(() => this.flush());
      this.#cancelFlush = () => clearImmediate(immediate);
    }
  }
}

/** An async iterable fed by `push()` until `end()`: the request side of a stream. One
 * consumer. */
export class Pushable<T> implements AsyncIterable<T> {
  #items: T[] = [];
  #waiting: ((result: IteratorResult<T>) => void) | undefined;
  #ended = false;

  /** Adds an item; false (and dropped) once ended. */
  push(item: T): boolean {
    if (this.#ended) {
      return false;
    }
    if (this.#waiting !== undefined) {
      const waiting = this.#waiting;
      this.#waiting = undefined;
      waiting({ value: item, done: false });
    } else {
      this.#items.push(item);
    }
    return true;
  }

  /** No more items: the consumer gets those already pushed, then the end. */
  end(): void {
    this.#ended = true;
    if (this.#waiting !== undefined && this.#items.length === 0) {
      const waiting = this.#waiting;
      this.#waiting = undefined;
      waiting({ value: undefined, done: true });
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        const item = this.#items.shift();
        if (item !== undefined) {
          return Promise.resolve({ value: item, done: false });
        }
        if (this.#ended) {
          return Promise.resolve({ value: undefined, done: true });
        }
        return new Promise((resolve) => {
          this.#waiting = resolve;
        });
      },
      // The consumer stops early (return), or fails (throw: Connect passes the call's error):
      // either way nothing more is sent.
      return: () => this.#close(),
      throw: () => this.#close(),
    };
  }

  #close(): Promise<IteratorResult<T>> {
    this.#items = [];
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }
}
