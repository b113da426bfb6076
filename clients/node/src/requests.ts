// The plain objects callers write, turned into the messages the server reads.
//
// Times are milliseconds (`...Ms`), or Dates for points in time; payloads are bytes or
// strings (sent as UTF-8). Queue settings are flat, and an update changes exactly the
// settings given (their update-mask paths are derived from the keys).

import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { HttpMethod, type HttpRequestSchema, type HttpTargetSchema } from "./gen/taskq/v1/http_pb.js";
import { QueueType, type QueueSchema, type RetryConfigSchema } from "./gen/taskq/v1/queue_pb.js";
import type { TaskSchema } from "./gen/taskq/v1/task_pb.js";
import { queueName, taskNameIn } from "./names.js";

/** How a task is retried; overrides the queue's retry settings for one task. */
export interface RetrySettings {
  /** Attempts in all, the first included; 0 = unlimited. */
  maxAttempts?: number;
  /** How long after the first attempt retrying may go on, ms. */
  maxRetryDurationMs?: number;
  /** The first retry's backoff, ms (default 100). */
  minBackoffMs?: number;
  /** The longest backoff, ms (default 3,600,000). */
  maxBackoffMs?: number;
  /** How many times the backoff doubles before it grows linearly (default 16). */
  maxDoublings?: number;
}

/** A queue's settings, for `createQueue` and `updateQueue`; unset ones keep the server's
 * defaults (create) or their current value (update). */
export interface QueueSettings extends RetrySettings {
  /** Push (tasks streamed to workers, the default) or pull (workers lease them). Fixed at
   * creation. */
  type?: "push" | "pull" | QueueType;
  /** Push: tasks per second; unset = unlimited. */
  maxDispatchesPerSecond?: number;
  /** Push: the token bucket's size. */
  maxBurstSize?: number;
  /** Push: tasks dispatched and unanswered at once, across workers (default 1000). */
  maxConcurrentDispatches?: number;
  /** Push: how long a streamed task stays leased to its worker, ms (default 10 min). */
  dispatchDeadlineMs?: number;
  /** The queue (id or `queues/{id}`) that receives tasks whose retries are exhausted; ""
   * for none. */
  deadLetterQueue?: string;
  /** How long failed tasks are kept, ms (default 31 days). */
  taskTtlMs?: number;
  /** How long a finished task's name stays reserved, ms (default 1 hour). */
  tombstoneTtlMs?: number;
  /** Push: deliver the tasks as HTTP requests to this target instead of streaming them to
   * workers. Pull queues cannot have one. `null` in `updateQueue` removes it. */
  httpTarget?: HttpTargetSettings | null;
}

/** An HTTP method by name (at run time in any case, for JavaScript callers). */
export type HttpMethodName = "POST" | "GET" | "HEAD" | "PUT" | "DELETE" | "PATCH" | "OPTIONS";

/** Where a push queue delivers its tasks as HTTP requests (the queue's HttpTarget). */
export interface HttpTargetSettings {
  /** The worker service's base URL (`https://host[:port][/path]`). Tasks whose URL is a path
   * are sent under it (`https://w.example.com/app` and `/work?x=1` give
   * `https://w.example.com/app/work?x=1`); tasks without one to this URL. Empty only when
   * every task has an absolute URL. */
  uri?: string;
  /** The method of tasks that choose none; default POST. */
  method?: HttpMethodName | HttpMethod;
  /** Headers added to every request, replacing a task's header of the same name. */
  headers?: Record<string, string>;
}

/** The HTTP request a task of a queue with an HTTP target becomes; its body is the payload. */
export interface HttpRequestSettings {
  /** An absolute `http(s)://` URL, or a path with an optional query (`/work?x=1`) sent under
   * the queue's `uri`. Unset: the queue's `uri`. Printable ASCII: percent-encode the rest. */
  url?: string;
  /** Unset: the queue's method. GET, HEAD, DELETE and OPTIONS requests have no body. */
  method?: HttpMethodName | HttpMethod;
  /** Request headers, such as Content-Type; the queue's headers replace those of the same
   * name. */
  headers?: Record<string, string>;
}

/** A task to create. */
export interface NewTask {
  /** The task's id (or full name): enables de-duplication. Unset: the server picks one. */
  name?: string;
  /** The payload: bytes, or a string sent as UTF-8. */
  payload?: Uint8Array | string;
  /** Headers for the worker (content type, trace context, ...). */
  attributes?: Record<string, string>;
  /** Pull queues: the grouping key for leasing by tag. */
  tag?: string;
  /** No worker gets the task before this time. */
  scheduleTime?: Date;
  /** No worker gets the task before this many ms from now (instead of `scheduleTime`). */
  delayMs?: number;
  /** Overrides of the queue's retry settings. */
  retry?: RetrySettings;
  /** Push: overrides the queue's dispatch deadline, ms. */
  dispatchDeadlineMs?: number;
  /** Queues with an HTTP target: the request this task becomes (URL or path, method,
   * headers; the body is the payload). Unset: the queue's target as it is. */
  httpRequest?: HttpRequestSettings;
}

type QueueInit = MessageInitShape<typeof QueueSchema>;
type TaskInit = MessageInitShape<typeof TaskSchema>;
type RetryConfigInit = MessageInitShape<typeof RetryConfigSchema>;
type HttpTargetInit = MessageInitShape<typeof HttpTargetSchema>;
type HttpRequestInit = MessageInitShape<typeof HttpRequestSchema>;

const utf8 = new TextEncoder();

/** The Task message of a NewTask in `queue`. */
export function taskMessage(queue: string, task: NewTask): TaskInit {
  if (task.scheduleTime !== undefined && task.delayMs !== undefined) {
    throw new TypeError("give a task either scheduleTime or delayMs, not both");
  }
  const scheduleTime =
    task.delayMs !== undefined ? new Date(Date.now() + task.delayMs) : task.scheduleTime;
  return {
    name: task.name ? taskNameIn(queue, task.name) : "",
    payload: typeof task.payload === "string" ? utf8.encode(task.payload) : task.payload,
    attributes: task.attributes,
    tag: task.tag,
    scheduleTime: scheduleTime && timestampFromDate(scheduleTime),
    retryConfig: task.retry && retryConfig(task.retry),
    dispatchDeadline: ms(task.dispatchDeadlineMs),
    httpRequest: task.httpRequest && httpRequest(task.httpRequest),
  };
}

/** Roughly the encoded size of a Task message, bytes (an upper bound for text): what
 * batching counts against `maxBytes`. */
export function taskSize(task: TaskInit): number {
  let size = 128 + (task.name?.length ?? 0) * 3 + (task.tag?.length ?? 0) * 3 + (task.payload?.byteLength ?? 0);
  const headers = { ...task.attributes, ...task.httpRequest?.headers };
  for (const [key, value] of Object.entries(headers)) {
    size += 8 + (key.length + value.length) * 3;
  }
  return size + (task.httpRequest?.url?.length ?? 0) * 3;
}

/** Maps each setting to its UpdateQueue mask path. */
const SETTING_PATHS: Record<keyof QueueSettings, string> = {
  type: "type",
  maxDispatchesPerSecond: "rate_limits.max_dispatches_per_second",
  maxBurstSize: "rate_limits.max_burst_size",
  maxConcurrentDispatches: "rate_limits.max_concurrent_dispatches",
  maxAttempts: "retry_config.max_attempts",
  maxRetryDurationMs: "retry_config.max_retry_duration",
  minBackoffMs: "retry_config.min_backoff",
  maxBackoffMs: "retry_config.max_backoff",
  maxDoublings: "retry_config.max_doublings",
  dispatchDeadlineMs: "dispatch_deadline",
  deadLetterQueue: "dead_letter_queue",
  taskTtlMs: "task_ttl",
  tombstoneTtlMs: "tombstone_ttl",
  httpTarget: "http_target",
};

/** A Queue message with the given settings, and the update-mask paths of exactly those. */
export function queueMessage(queue: string, settings: QueueSettings): { queue: QueueInit; paths: string[] } {
  const paths: string[] = [];
  for (const [key, value] of Object.entries(settings)) {
    const path = SETTING_PATHS[key as keyof QueueSettings];
    if (path === undefined) {
      throw new TypeError(`unknown queue setting ${key}; known: ${Object.keys(SETTING_PATHS).join(", ")}`);
    }
    if (value !== undefined && key !== "type") {
      paths.push(path);
    }
  }
  const message: QueueInit = {
    name: queueName(queue),
    type: queueType(settings.type),
    rateLimits: {
      maxDispatchesPerSecond: settings.maxDispatchesPerSecond,
      maxBurstSize: settings.maxBurstSize,
      maxConcurrentDispatches: settings.maxConcurrentDispatches,
    },
    retryConfig: retryConfig(settings),
    dispatchDeadline: ms(settings.dispatchDeadlineMs),
    deadLetterQueue: settings.deadLetterQueue ? queueName(settings.deadLetterQueue) : "",
    taskTtl: ms(settings.taskTtlMs),
    tombstoneTtl: ms(settings.tombstoneTtlMs),
    httpTarget: settings.httpTarget ? httpTarget(settings.httpTarget) : undefined,
  };
  return { queue: message, paths };
}

function retryConfig(settings: RetrySettings): RetryConfigInit {
  return {
    maxAttempts: settings.maxAttempts,
    maxRetryDuration: ms(settings.maxRetryDurationMs),
    minBackoff: ms(settings.minBackoffMs),
    maxBackoff: ms(settings.maxBackoffMs),
    maxDoublings: settings.maxDoublings,
  };
}

function httpTarget(target: HttpTargetSettings): HttpTargetInit {
  return { uri: target.uri, httpMethod: httpMethod(target.method), headers: target.headers };
}

function httpRequest(request: HttpRequestSettings): HttpRequestInit {
  return { url: request.url, httpMethod: httpMethod(request.method), headers: request.headers };
}

const METHODS: Record<string, HttpMethod> = {
  POST: HttpMethod.POST,
  GET: HttpMethod.GET,
  HEAD: HttpMethod.HEAD,
  PUT: HttpMethod.PUT,
  DELETE: HttpMethod.DELETE,
  PATCH: HttpMethod.PATCH,
  OPTIONS: HttpMethod.OPTIONS,
};

function httpMethod(method: HttpMethodName | HttpMethod | undefined): HttpMethod {
  if (method === undefined) {
    return HttpMethod.UNSPECIFIED;
  }
  if (typeof method === "number") {
    return method;
  }
  const value = Object.hasOwn(METHODS, method.toUpperCase()) ? METHODS[method.toUpperCase()] : undefined;
  if (value === undefined) {
    throw new TypeError(`unsupported HTTP method ${method}; supported: ${Object.keys(METHODS).join(", ")}`);
  }
  return value;
}

function queueType(type: QueueSettings["type"]): QueueType {
  switch (type) {
    case undefined:
      return QueueType.UNSPECIFIED;
    case "push":
      return QueueType.PUSH;
    case "pull":
      return QueueType.PULL;
    default:
      return type;
  }
}

function ms(value: number | undefined) {
  return value === undefined ? undefined : durationFromMs(value);
}
