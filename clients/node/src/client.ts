// `TaskqClient`: one connection to a taskq server, one method per RPC.
//
//     const client = createTaskqClient({ address: "127.0.0.1:50051" });
//     await client.createQueue("work", { type: "pull" });
//     await client.createTask("work", { payload: "hello" });
//     const [task] = await client.leaseTasks("work", { leaseDurationMs: 60_000 });
//     await client.deleteTask(task); // acknowledges: the Task carries its lease token
//     await client.close();
//
// Each method builds its request (see requests.ts), calls Connect's client for the service
// over the gRPC protocol (HTTP/2; TLS for an https:// address or with `tls` settings: see
// address.ts and connection.ts), and returns the generated message (a Queue, a Task, ...). A
// failed call rejects with a TaskqError (see errors.ts); unary calls failing with UNAVAILABLE
// (a restart of the server) are first made again with the same request, for up to 15 s (see
// retry.ts). List methods are async iterables that follow page tokens to the end. Every
// method takes an optional AbortSignal and timeout.

import { randomUUID } from "node:crypto";
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { Queue, QueueSchema, QueueStats } from "./gen/taskq/v1/queue_pb.js";
import { QueueService } from "./gen/taskq/v1/queue_service_pb.js";
import type { Task, TaskView } from "./gen/taskq/v1/task_pb.js";
import { TaskService, type CreateTaskRequestSchema, type DeleteTaskRequestSchema } from "./gen/taskq/v1/task_service_pb.js";
import { Batcher, MAX_BATCH_ITEMS, type BatchingOptions } from "./batching.js";
import { Code, statusToError, toTaskqError, TaskqError } from "./errors.js";
import { queueName, taskName } from "./names.js";
import { queueMessage, taskMessage, taskSize, type NewTask, type QueueSettings } from "./requests.js";
import { brokenConnectionIsUnavailable, retryUnavailable, type RetryOptions } from "./retry.js";
import { TaskStream, type TaskStreamOptions } from "./stream.js";
import { connectionFailureIsUnavailable, connectionFor } from "./connection.js";
import type { TlsSettings } from "./tls.js";
import { bearerTokenFrom, PlaintextTokenError } from "./token.js";

/** The address `taskq serve` listens on by default. */
export const DEFAULT_ADDRESS = "127.0.0.1:50051";

/** Largest message sent or received, bytes: the server's default limit (32 MiB). */
export const MAX_MESSAGE_BYTES = 32 * 1024 * 1024;

/** Options of `createTaskqClient`. */
export interface TaskqClientOptions {
  /** The server: `host:port`, a bare host (port 50051), `https://host[:port]` (TLS, 443
   * without a port), `http://host[:port]`, `dns:///host[:port]`, `unix:path` or an
   * `ipv4:`/`ipv6:` list (see address.ts). A malformed address throws InvalidAddressError.
   * Default 127.0.0.1:50051. */
  address?: string;
  /** Connect over TLS with these settings (CA file, client certificate for mTLS, server
   * name), whatever the address's form; `{}` trusts Node's CAs. The files are read now:
   * InvalidTlsSettingsError names one that cannot be used. */
  tls?: TlsSettings;
  /** A bearer token: every call, the Worker's StreamTasks streams included, sends
   * `authorization: Bearer <token>`; "" sends none. Without `token` or `tokenFile`: the
   * environment's TASKQ_TOKEN, else TASKQ_TOKEN_FILE (see token.ts). */
  token?: string;
  /** A file holding the token, read now and again before a call when it has changed. */
  tokenFile?: string;
  /** Send the token even in plain text to another machine (a network protected otherwise);
   * without it, a token without TLS goes only to this machine, else PlaintextTokenError. */
  allowPlaintextToken?: boolean;
  /** A Connect transport to use instead of opening one; `address`, `tls`, the token, `retry`
   * and `interceptors` are then ignored (give the transport its own, e.g. bearerToken). */
  transport?: Transport;
  /** The deadline of each call, ms, its retries included; 0 for none. LeaseTasks calls get
   * their `waitMs` on top. Default 30,000. */
  timeoutMs?: number;
  /** How calls failing with UNAVAILABLE are retried (default: for up to 15 s, waiting up to
   * 100 ms, 200 ms, ... 2 s between attempts; see retry.ts); false: not at all. */
  retry?: RetryOptions | false;
  /** How `createTask` calls made close together are coalesced into BatchCreateTasks calls;
   * false: each create is its own call. */
  batching?: BatchingOptions | false;
  /** More Connect interceptors (logging, auth headers, metrics), inside the retry one: they
   * see every attempt. */
  interceptors?: Interceptor[];
}

/** Options every call takes. */
export interface CallOptions {
  /** Aborting it cancels the call, which rejects with code CANCELLED. */
  signal?: AbortSignal;
  /** The call's deadline, ms, instead of the client's. */
  timeoutMs?: number;
}

/** Options of `createTask`. */
export interface CreateTaskOptions extends CallOptions {
  /** The idempotency key (1 to 100 of `[A-Za-z0-9_-]`): a create repeated with the same key
   * adds no second task. Default: a random UUID, chosen before the first attempt and sent on
   * every retry, so that retries are safe. An application that retries a create itself
   * (after the client gave up) must pass its own, the same on each of its attempts. "" sends
   * none, and turns this create's retries off. */
  requestId?: string;
  /** false: send this create on its own, not in a batch. Creates with a `signal` or a
   * `timeoutMs` are always sent on their own. */
  batch?: boolean;
}

/** Options of `listTasks`. */
export interface ListTasksOptions extends CallOptions {
  /** E.g. `state = READY AND tag = "q3"`; see ListTasksRequest.filter. */
  filter?: string;
  /** TaskView.FULL to include payloads (default BASIC). */
  view?: TaskView;
  /** Tasks per page (default 100, at most 1000). */
  pageSize?: number;
}

/** Options of `leaseTasks`. */
export interface LeaseTasksOptions extends CallOptions {
  /** How long the leases last, ms (more than 0, at most 7 days). */
  leaseDurationMs: number;
  /** The most tasks to lease, 1 to 1000. Default 1. */
  maxTasks?: number;
  /** Only tasks with this tag. */
  tag?: string;
  /** Only tasks with the tag of the oldest ready task. */
  oldestTag?: boolean;
  /** Wait up to this long for a task when none is ready, ms (at most 60,000). */
  waitMs?: number;
  /** Default TaskView.FULL. */
  view?: TaskView;
}

/** A task to acknowledge or delete: its name, or a Task (its lease token, if any, makes the
 * delete an acknowledgement), or a name with an explicit lease token. */
export type TaskRef = string | { readonly name: string; readonly leaseToken?: string };

type CreateTaskRequestInit = MessageInitShape<typeof CreateTaskRequestSchema>;
type DeleteTaskRequestInit = MessageInitShape<typeof DeleteTaskRequestSchema>;

/** Creates a client; see `TaskqClient`. */
export function createTaskqClient(options: TaskqClientOptions = {}): TaskqClient {
  return new TaskqClient(options);
}

/** A connection to one taskq server; see the module comment. */
export class TaskqClient {
  /** The Connect client of TaskService, for anything the methods here do not cover. */
  readonly taskService: Client<typeof TaskService>;
  /** The Connect client of QueueService. */
  readonly queueService: Client<typeof QueueService>;
  /** The server's address, as given. */
  readonly address: string;
  readonly #timeoutMs: number;
  readonly #sessions: Http2SessionManager | undefined;
  readonly #creates: Batcher<CreateTaskRequestInit, Task> | undefined;
  /** Aborted by close(): calls waiting to be retried give up. */
  readonly #closed = new AbortController();

  constructor(options: TaskqClientOptions = {}) {
    this.address = options.address ?? DEFAULT_ADDRESS;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    let transport = options.transport;
    if (transport === undefined) {
      const connection = connectionFor(this.address, options.tls);
      const bearer = bearerTokenFrom(options);
      if (bearer && !connection.tls && !connection.local && !options.allowPlaintextToken) {
        throw new PlaintextTokenError(
          `refusing to send a token in plain text to ${this.address}: anyone on the way could copy it and call as you. ` +
            "Connect with TLS (https://..., or `tls` settings such as a CA file), or allow it explicitly " +
            "(allowPlaintextToken: true) when the network itself is protected",
        );
      }
      const token = bearer?.interceptor();
      // Pings on a connection that has been quiet for 30 s find a dead peer; the server
      // accepts pings every 10 s and answers faster ones with GOAWAY.
      this.#sessions = new Http2SessionManager(
        connection.baseUrl,
        { pingIntervalMs: 30_000, pingTimeoutMs: 10_000 },
        { createConnection: connection.createConnection },
      );
      transport = createGrpcTransport({
        baseUrl: connection.baseUrl,
        sessionManager: this.#sessions,
        // The first is the outermost: retries wrap the caller's interceptors, which see every
        // attempt (and the token), and the innermost two report a broken connection, or one
        // that could not be made, as UNAVAILABLE.
        interceptors: [
          ...(options.retry === false ? [] : [retryUnavailable(options.retry, this.#closed.signal)]),
          ...(token ? [token] : []),
          ...(options.interceptors ?? []),
          brokenConnectionIsUnavailable(),
          connectionFailureIsUnavailable(),
        ],
        readMaxBytes: MAX_MESSAGE_BYTES,
        writeMaxBytes: MAX_MESSAGE_BYTES,
      });
    }
    this.taskService = createClient(TaskService, transport);
    this.queueService = createClient(QueueService, transport);
    if (options.batching !== false) {
      this.#creates = new Batcher<CreateTaskRequestInit, Task>(
        (parent, requests) => this.#batchCreate(parent, requests),
        options.batching,
        (request) => taskSize(request.task ?? {}),
      );
    }
  }

  // Queues ----------------------------------------------------------------------------------

  /** Creates a queue from settings (`{ type: "pull", maxAttempts: 5 }`) or a Queue message. */
  async createQueue(queue: string, settings?: QueueSettings, options?: CallOptions): Promise<Queue>;
  async createQueue(queue: MessageInitShape<typeof QueueSchema>, options?: CallOptions): Promise<Queue>;
  async createQueue(
    queue: string | MessageInitShape<typeof QueueSchema>,
    settingsOrOptions?: QueueSettings | CallOptions,
    maybeOptions?: CallOptions,
  ): Promise<Queue> {
    let message: MessageInitShape<typeof QueueSchema>;
    let options: CallOptions | undefined;
    if (typeof queue === "string") {
      message = queueMessage(queue, (settingsOrOptions as QueueSettings | undefined) ?? {}).queue;
      options = maybeOptions;
    } else {
      message = { ...queue, name: queueName(queue.name ?? "") };
      options = settingsOrOptions as CallOptions | undefined;
    }
    const response = await this.#call(options, (o) => this.queueService.createQueue({ queue: message }, o));
    return response.queue!;
  }

  async getQueue(queue: string, options?: CallOptions): Promise<Queue> {
    const response = await this.#call(options, (o) => this.queueService.getQueue({ name: queueName(queue) }, o));
    return response.queue!;
  }

  /** Every queue, following pages. */
  async *listQueues(options: CallOptions & { pageSize?: number } = {}): AsyncGenerator<Queue> {
    let pageToken = "";
    do {
      const page = await this.#call(options, (o) =>
        this.queueService.listQueues({ pageSize: options.pageSize, pageToken }, o),
      );
      yield* page.queues;
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /** Changes exactly the settings given (`{ maxAttempts: 3 }`); a setting given as
   * `undefined` explicitly is left as it is. */
  async updateQueue(queue: string, settings: QueueSettings, options?: CallOptions): Promise<Queue> {
    const { queue: message, paths } = queueMessage(queue, settings);
    const response = await this.#call(options, (o) =>
      this.queueService.updateQueue({ queue: message, updateMask: { paths } }, o),
    );
    return response.queue!;
  }

  async deleteQueue(queue: string, options?: CallOptions): Promise<void> {
    await this.#call(options, (o) => this.queueService.deleteQueue({ name: queueName(queue) }, o));
  }

  async pauseQueue(queue: string, options?: CallOptions): Promise<Queue> {
    const response = await this.#call(options, (o) => this.queueService.pauseQueue({ name: queueName(queue) }, o));
    return response.queue!;
  }

  async resumeQueue(queue: string, options?: CallOptions): Promise<Queue> {
    const response = await this.#call(options, (o) => this.queueService.resumeQueue({ name: queueName(queue) }, o));
    return response.queue!;
  }

  /** Removes every task of the queue; tasks created after the purge are kept. Not retried on
   * UNAVAILABLE: a second purge would also delete tasks created since the first, whose answer
   * may only have been lost. */
  async purgeQueue(queue: string, options?: CallOptions): Promise<{ queue: Queue; purgedCount: bigint }> {
    const response = await this.#call(options, (o) => this.queueService.purgeQueue({ name: queueName(queue) }, o));
    return { queue: response.queue!, purgedCount: response.purgedCount };
  }

  async getQueueStats(queue: string, options?: CallOptions): Promise<QueueStats> {
    const response = await this.#call(options, (o) =>
      this.queueService.getQueueStats({ name: queueName(queue) }, o),
    );
    return response.stats!;
  }

  // Tasks -----------------------------------------------------------------------------------

  /**
   * Adds a task to a queue. Creates made within a couple of milliseconds of each other go in
   * one BatchCreateTasks call (unless batching is off); each still resolves with its own task
   * or rejects with its own error (e.g. TaskAlreadyExistsError).
   */
  async createTask(queue: string, task: NewTask = {}, options: CreateTaskOptions = {}): Promise<Task> {
    const parent = queueName(queue);
    const request: CreateTaskRequestInit = {
      parent,
      task: taskMessage(parent, task),
      requestId: options.requestId ?? randomUUID(),
    };
    const alone = options.batch === false || options.signal !== undefined || options.timeoutMs !== undefined;
    if (this.#creates !== undefined && !alone) {
      return this.#creates.add(parent, request);
    }
    const response = await this.#call(options, (o) => this.taskService.createTask(request, o));
    return response.task!;
  }

  /**
   * Adds many tasks in BatchCreateTasks calls of up to 1000 (one durable commit each). Each
   * item has its own outcome, in order: one refused task does not fail the others.
   */
  async createTasks(queue: string, tasks: NewTask[], options: CallOptions = {}): Promise<PromiseSettledResult<Task>[]> {
    const parent = queueName(queue);
    const outcomes: PromiseSettledResult<Task>[] = [];
    for (let start = 0; start < tasks.length; start += MAX_BATCH_ITEMS) {
      const requests = tasks
        .slice(start, start + MAX_BATCH_ITEMS)
        .map((task) => ({ task: taskMessage(parent, task), requestId: randomUUID() }));
      for (const outcome of await this.#batchCreate(parent, requests, options)) {
        outcomes.push(
          outcome instanceof Error ? { status: "rejected", reason: outcome } : { status: "fulfilled", value: outcome },
        );
      }
    }
    return outcomes;
  }

  /** One task (payload included unless `view` is TaskView.BASIC). */
  async getTask(task: TaskRef, options: CallOptions & { view?: TaskView } = {}): Promise<Task> {
    const response = await this.#call(options, (o) =>
      this.taskService.getTask({ name: taskName(task), view: options.view }, o),
    );
    return response.task!;
  }

  /** The tasks of a queue in task id order, following pages. */
  async *listTasks(queue: string, options: ListTasksOptions = {}): AsyncGenerator<Task> {
    let pageToken = "";
    do {
      const page = await this.#call(options, (o) =>
        this.taskService.listTasks(
          {
            parent: queueName(queue),
            filter: options.filter,
            view: options.view,
            pageSize: options.pageSize,
            pageToken,
          },
          o,
        ),
      );
      yield* page.tasks;
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /**
   * Deletes a task. Given a leased Task (or `{ name, leaseToken }`) it acknowledges it, and
   * rejects with LeaseLostError if the lease is no longer this one; given a name, it removes
   * the task whatever its state.
   */
  async deleteTask(task: TaskRef, options?: CallOptions): Promise<void> {
    const request = deleteRequest(task);
    await this.#call(options, (o) => this.taskService.deleteTask(request, o));
  }

  /** Acknowledges a leased task: `deleteTask` with its lease token, which must be set. */
  async ackTask(task: { readonly name: string; readonly leaseToken: string }, options?: CallOptions): Promise<void> {
    if (!task.leaseToken) {
      throw new TypeError(`ackTask needs the lease token of ${task.name}`);
    }
    await this.deleteTask(task, options);
  }

  /** Deletes or acknowledges many tasks of one queue in BatchDeleteTasks calls of up to 1000,
   * one outcome per item, in order. */
  async deleteTasks(queue: string, tasks: TaskRef[], options: CallOptions = {}): Promise<PromiseSettledResult<void>[]> {
    const parent = queueName(queue);
    const outcomes: PromiseSettledResult<void>[] = [];
    for (let start = 0; start < tasks.length; start += MAX_BATCH_ITEMS) {
      const requests = tasks.slice(start, start + MAX_BATCH_ITEMS).map(deleteRequest);
      const response = await this.#call(options, (o) => this.taskService.batchDeleteTasks({ parent, requests }, o));
      for (const status of response.results) {
        outcomes.push(
          status.code === 0 // OK
            ? { status: "fulfilled", value: undefined }
            : { status: "rejected", reason: statusToError(status) },
        );
      }
    }
    return outcomes;
  }

  /** Pull queues: leases up to `maxTasks` ready tasks for `leaseDurationMs`, each with its
   * `leaseToken`. Rejects with QueuePausedError or WrongQueueTypeError. When an attempt's
   * answer is lost and the call retried, the tasks that attempt leased come back (ready, the
   * attempt counted) when their lease expires. */
  async leaseTasks(queue: string, options: LeaseTasksOptions): Promise<Task[]> {
    const waitMs = options.waitMs ?? 0;
    const response = await this.#call(
      options,
      (o) =>
        this.taskService.leaseTasks(
          {
            parent: queueName(queue),
            leaseDuration: durationFromMs(options.leaseDurationMs),
            maxTasks: options.maxTasks ?? 1,
            tag: options.tag,
            oldestTag: options.oldestTag,
            wait: waitMs > 0 ? durationFromMs(waitMs) : undefined,
            responseView: options.view,
          },
          o,
        ),
      waitMs, // the server may hold the call for the whole wait: the deadline must outlast it
    );
    return response.tasks;
  }

  /** Sets a lease to end `leaseDurationMs` from now (0 releases the task at once). The lease
   * token is the task's, or `options.leaseToken`. Returns the task, without its payload. */
  async modifyLease(
    task: { readonly name: string; readonly leaseToken?: string },
    leaseDurationMs: number,
    options: CallOptions & { leaseToken?: string } = {},
  ): Promise<Task> {
    const response = await this.#call(options, (o) =>
      this.taskService.modifyLease(
        {
          name: task.name,
          leaseToken: options.leaseToken ?? task.leaseToken ?? "",
          leaseDuration: durationFromMs(leaseDurationMs),
        },
        o,
      ),
    );
    return response.task!;
  }

  /** Releases a leased task at once for another worker (the attempt counts). */
  async releaseTask(task: { readonly name: string; readonly leaseToken: string }, options?: CallOptions): Promise<Task> {
    return this.modifyLease(task, 0, options);
  }

  /** Makes a scheduled or failed task ready now. */
  async runTask(task: TaskRef, options?: CallOptions): Promise<Task> {
    const response = await this.#call(options, (o) => this.taskService.runTask({ name: taskName(task) }, o));
    return response.task!;
  }

  /** Push queues: opens a StreamTasks stream (see TaskStream); `Worker` builds on it. */
  streamTasks(queue: string, options?: TaskStreamOptions): TaskStream {
    return new TaskStream(this.taskService, queue, options);
  }

  // Lifetime --------------------------------------------------------------------------------

  /** Sends the creates waiting for their batch now, and waits for their answers. */
  async flush(): Promise<void> {
    await this.#creates?.flush();
  }

  /** Flushes, then closes the connection (open streams end with it). */
  async close(): Promise<void> {
    await this.#creates?.close();
    this.#closed.abort();
    this.#sessions?.abort();
  }

  // Internals -------------------------------------------------------------------------------

  /** Makes one call with the caller's signal and deadline; errors become TaskqErrors. */
  async #call<T>(
    options: CallOptions | undefined,
    call: (options: { signal?: AbortSignal; timeoutMs?: number }) => Promise<T>,
    extraMs = 0,
  ): Promise<T> {
    const timeoutMs = options?.timeoutMs ?? this.#timeoutMs;
    try {
      return await call({ signal: options?.signal, timeoutMs: timeoutMs > 0 ? timeoutMs + extraMs : undefined });
    } catch (error) {
      throw toTaskqError(error);
    }
  }

  async #batchCreate(
    parent: string,
    requests: CreateTaskRequestInit[],
    options?: CallOptions,
  ): Promise<(Task | TaskqError)[]> {
    const items = requests.map(({ task, requestId }) => ({ task, requestId }));
    const response = await this.#call(options, (o) => this.taskService.batchCreateTasks({ parent, requests: items }, o));
    return response.results.map((result) => {
      switch (result.result.case) {
        case "task":
          return result.result.value;
        case "error":
          return statusToError(result.result.value);
        default:
          return new TaskqError({ code: Code.Internal, message: "the server answered an item with no result" });
      }
    });
  }
}

function deleteRequest(task: TaskRef): DeleteTaskRequestInit {
  return typeof task === "string" ? { name: task } : { name: task.name, leaseToken: task.leaseToken ?? "" };
}
