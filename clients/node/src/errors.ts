// The one error type of the taskq client.
//
// Every failed call rejects with a `TaskqError`: the canonical gRPC `code` (Connect's `Code`,
// whose numbers are gRPC's), the stable `reason` of the server's `google.rpc.ErrorInfo`
// (`QUEUE_NOT_FOUND`, `LEASE_LOST`, ...), its `metadata`, and the `fieldViolations` of a
// `google.rpc.BadRequest`. The reasons callers commonly handle have subclasses, so both work:
//
//     if (error instanceof LeaseLostError) ...           // exactly this reason
//     if (error instanceof TaskqError && error.code === Code.FailedPrecondition) ...
//
// The details arrive as `google.rpc.Status.details` (in the `grpc-status-details-bin`
// trailer for a failed call, inline for the items of a batch call). google/rpc/
// error_details.proto is not generated for this package, so the few detail messages read
// here are decoded by hand from their (stable) wire format.

import { Code, ConnectError } from "@connectrpc/connect";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import type { Status } from "./gen/google/rpc/status_pb.js";

export { Code };

/** The ErrorInfo domain of errors produced by the taskq server. */
export const DOMAIN = "taskq.dev";

/** One invalid request field, from a `google.rpc.BadRequest` detail. */
export interface FieldViolation {
  /** The field's path in the request, e.g. `task.schedule_time` or `requests[3].task.name`. */
  readonly field: string;
  readonly description: string;
  /** A stable UPPER_SNAKE reason for this field, e.g. `REQUIRED_FIELD`; may be empty. */
  readonly reason: string;
}

/** One failed precondition, from a `google.rpc.PreconditionFailure` detail. */
export interface PreconditionViolation {
  readonly type: string;
  readonly subject: string;
  readonly description: string;
}

/** The resource an error is about, from a `google.rpc.ResourceInfo` detail. */
export interface ResourceInfo {
  readonly resourceType: string;
  readonly resourceName: string;
  readonly owner: string;
  readonly description: string;
}

/** What a TaskqError is made of; see the class for each field. */
export interface TaskqErrorInit {
  code: Code;
  message: string;
  reason?: string;
  domain?: string;
  metadata?: Record<string, string>;
  fieldViolations?: FieldViolation[];
  preconditionViolations?: PreconditionViolation[];
  resourceInfo?: ResourceInfo;
  retryDelayMs?: number;
  cause?: unknown;
}

/** A call to the taskq server failed. */
export class TaskqError extends Error {
  /** The canonical gRPC status code. */
  readonly code: Code;
  /** The server's human-readable message (`message` also carries the code and reason). */
  readonly rawMessage: string;
  /** The stable `ErrorInfo.reason`, e.g. `QUEUE_NOT_FOUND`; "" when the error has none
   * (transport failures, client-side deadlines and cancellations). */
  readonly reason: string;
  /** The `ErrorInfo.domain`: `taskq.dev` for the server's errors. */
  readonly domain: string;
  /** The `ErrorInfo.metadata`, e.g. `{ queue: "queues/q" }`. */
  readonly metadata: Readonly<Record<string, string>>;
  /** The invalid fields of an INVALID_ARGUMENT error. */
  readonly fieldViolations: readonly FieldViolation[];
  /** The failed preconditions of a FAILED_PRECONDITION error (lease conflicts). */
  readonly preconditionViolations: readonly PreconditionViolation[];
  /** The resource the error is about, when the server named one. */
  readonly resourceInfo: ResourceInfo | undefined;
  /** How long the server asks the caller to wait before retrying (`RetryInfo`), if it does. */
  readonly retryDelayMs: number | undefined;

  constructor(init: TaskqErrorInit) {
    const label = init.reason ? `${codeName(init.code)} ${init.reason}` : codeName(init.code);
    super(`[${label}] ${init.message}`, init.cause === undefined ? undefined : { cause: init.cause });
    this.code = init.code;
    this.rawMessage = init.message;
    this.reason = init.reason ?? "";
    this.domain = init.domain ?? "";
    this.metadata = { ...init.metadata };
    this.fieldViolations = init.fieldViolations ?? [];
    this.preconditionViolations = init.preconditionViolations ?? [];
    this.resourceInfo = init.resourceInfo;
    this.retryDelayMs = init.retryDelayMs;
    this.name = new.target.name;
  }
}

// One subclass per reason callers commonly handle -------------------------------------------

/** NOT_FOUND: the queue does not exist. */
export class QueueNotFoundError extends TaskqError {}
/** NOT_FOUND: the task does not exist (it may have been acknowledged or deleted). */
export class TaskNotFoundError extends TaskqError {}
/** ALREADY_EXISTS: a queue of that name exists. */
export class QueueAlreadyExistsError extends TaskqError {}
/** ALREADY_EXISTS: a task of that name exists. */
export class TaskAlreadyExistsError extends TaskqError {}
/** ALREADY_EXISTS: a task of that name finished within the queue's `tombstone_ttl`. */
export class TaskTombstonedError extends TaskqError {}
/** FAILED_PRECONDITION: the lease token is stale (the lease expired, was released, or the
 * task was leased again): another worker may have the task now. */
export class LeaseLostError extends TaskqError {}
/** FAILED_PRECONDITION: the queue is paused. */
export class QueuePausedError extends TaskqError {}
/** FAILED_PRECONDITION: a pull call on a push queue or the other way round. */
export class WrongQueueTypeError extends TaskqError {}
/** FAILED_PRECONDITION: the task is leased (RunTask). */
export class TaskLeasedError extends TaskqError {}

const BY_REASON: Record<string, new (init: TaskqErrorInit) => TaskqError> = {
  QUEUE_NOT_FOUND: QueueNotFoundError,
  TASK_NOT_FOUND: TaskNotFoundError,
  QUEUE_ALREADY_EXISTS: QueueAlreadyExistsError,
  TASK_ALREADY_EXISTS: TaskAlreadyExistsError,
  TASK_TOMBSTONED: TaskTombstonedError,
  LEASE_LOST: LeaseLostError,
  QUEUE_PAUSED: QueuePausedError,
  WRONG_QUEUE_TYPE: WrongQueueTypeError,
  TASK_LEASED: TaskLeasedError,
};

/** Whether `error` is a TaskqError, optionally of the given reason. */
export function isTaskqError(error: unknown, reason?: string): error is TaskqError {
  return error instanceof TaskqError && (reason === undefined || error.reason === reason);
}

// Building errors ---------------------------------------------------------------------------

/** A detail of a `google.rpc.Status`: its full type name and encoded bytes. */
interface RawDetail {
  type: string;
  value: Uint8Array;
}

/** The TaskqError for whatever a Connect call rejected with (a TaskqError is kept). */
export function toTaskqError(error: unknown): TaskqError {
  if (error instanceof TaskqError) {
    return error;
  }
  const connectError = ConnectError.from(error);
  const details: RawDetail[] = [];
  for (const detail of connectError.details) {
    if ("type" in detail) {
      details.push({ type: detail.type, value: detail.value });
    }
  }
  return build(connectError.code, connectError.rawMessage, details, error);
}

/** The TaskqError for a `google.rpc.Status` carried in a message (the items of batch calls,
 * refused answers on a stream, a task's last attempt). */
export function statusToError(status: Status): TaskqError {
  const details = status.details.map((any) => ({
    type: any.typeUrl.slice(any.typeUrl.lastIndexOf("/") + 1),
    value: any.value,
  }));
  return build(status.code as Code, status.message, details, undefined);
}

function build(code: Code, message: string, details: RawDetail[], cause: unknown): TaskqError {
  const init: TaskqErrorInit = { code, message, cause };
  for (const detail of details) {
    try {
      switch (detail.type) {
        case "google.rpc.ErrorInfo":
          Object.assign(init, decodeErrorInfo(detail.value));
          break;
        case "google.rpc.BadRequest":
          init.fieldViolations = decodeRepeated(detail.value, (bytes) => {
            const [field, description, reason] = strings(bytes, 3);
            return { field, description, reason };
          });
          break;
        case "google.rpc.PreconditionFailure":
          init.preconditionViolations = decodeRepeated(detail.value, (bytes) => {
            const [type, subject, description] = strings(bytes, 3);
            return { type, subject, description };
          });
          break;
        case "google.rpc.ResourceInfo": {
          const [resourceType, resourceName, owner, description] = strings(detail.value, 4);
          init.resourceInfo = { resourceType, resourceName, owner, description };
          break;
        }
        case "google.rpc.RetryInfo":
          init.retryDelayMs = decodeRetryDelayMs(detail.value);
          break;
      }
    } catch {
      // A detail that does not decode is left out; the code and message still stand.
    }
  }
  const subclass = init.domain === DOMAIN && init.reason ? BY_REASON[init.reason] : undefined;
  return new (subclass ?? TaskqError)(init);
}

function codeName(code: Code): string {
  // Code.FailedPrecondition -> FAILED_PRECONDITION, as gRPC spells it.
  const name = Code[code] as string | undefined;
  return name === undefined ? `CODE_${code}` : name.replace(/(?<=[a-z])(?=[A-Z])/g, "_").toUpperCase();
}

// Wire decoding of google/rpc/error_details.proto ------------------------------------------

/** ErrorInfo { string reason = 1; string domain = 2; map<string, string> metadata = 3; } */
function decodeErrorInfo(bytes: Uint8Array): Pick<TaskqErrorInit, "reason" | "domain" | "metadata"> {
  const reader = new BinaryReader(bytes);
  let reason = "";
  let domain = "";
  const metadata: Record<string, string> = {};
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) {
      reason = reader.string();
    } else if (field === 2 && wireType === WireType.LengthDelimited) {
      domain = reader.string();
    } else if (field === 3 && wireType === WireType.LengthDelimited) {
      const [key, value] = strings(reader.bytes(), 2);
      metadata[key] = value;
    } else {
      reader.skip(wireType, field);
    }
  }
  return { reason, domain, metadata };
}

/** The string fields 1..count of a message (absent ones ""), skipping everything else. */
function strings(bytes: Uint8Array, count: number): string[] {
  const values = new Array<string>(count).fill("");
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field >= 1 && field <= count && wireType === WireType.LengthDelimited) {
      values[field - 1] = reader.string();
    } else {
      reader.skip(wireType, field);
    }
  }
  return values;
}

/** The items of a message whose field 1 is a repeated message (BadRequest, PreconditionFailure). */
function decodeRepeated<T>(bytes: Uint8Array, item: (bytes: Uint8Array) => T): T[] {
  const items: T[] = [];
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) {
      items.push(item(reader.bytes()));
    } else {
      reader.skip(wireType, field);
    }
  }
  return items;
}

/** RetryInfo { google.protobuf.Duration retry_delay = 1; } */
function decodeRetryDelayMs(bytes: Uint8Array): number | undefined {
  const reader = new BinaryReader(bytes);
  let delay: number | undefined;
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) {
      const inner = new BinaryReader(reader.bytes());
      let seconds = 0n;
      let nanos = 0;
      while (inner.pos < inner.len) {
        const [f, w] = inner.tag();
        if (f === 1 && w === WireType.Varint) {
          seconds = BigInt(inner.int64());
        } else if (f === 2 && w === WireType.Varint) {
          nanos = inner.int32();
        } else {
          inner.skip(w, f);
        }
      }
      delay = Number(seconds) * 1000 + nanos / 1e6;
    } else {
      reader.skip(wireType, field);
    }
  }
  return delay;
}
