// The plain objects callers write, turned into the messages the server reads.
//
// Times are milliseconds (`...Ms`), or Dates for points in time; payloads are bytes or
// strings (sent as UTF-8). Queue settings are flat, and an update changes exactly the
// settings given (their update-mask paths are derived from the keys).

import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
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
}

type QueueInit = MessageInitShape<typeof QueueSchema>;
type TaskInit = MessageInitShape<typeof TaskSchema>;
type RetryConfigInit = MessageInitShape<typeof RetryConfigSchema>;

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
  };
}

/** Roughly the encoded size of a Task message, bytes (an upper bound for text): what
 * batching counts against `maxBytes`. */
export function taskSize(task: TaskInit): number {
  let size = 128 + (task.name?.length ?? 0) * 3 + (task.tag?.length ?? 0) * 3 + (task.payload?.byteLength ?? 0);
  for (const [key, value] of Object.entries(task.attributes ?? {})) {
    size += 8 + (key.length + value.length) * 3;
  }
  return size;
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
