// @taskq/client: a thin TypeScript layer over the generated taskq.v1 messages and services.
//
//   client.ts    TaskqClient / createTaskqClient: one method per RPC, retries, batching
//   errors.ts    TaskqError and its subclasses per reason (LeaseLostError, ...)
//   batching.ts  coalescing of createTask calls into BatchCreateTasks
//   stream.ts    TaskStream: one StreamTasks stream as an async iterable
//   worker.ts    Worker: push queues (StreamTasks) with a concurrency limit
//   pull.ts      PullWorker: pull queues (lease → work → delete)
//   failures.ts  PermanentError and RetryLater, thrown by handlers
//   signature.ts verifySignature: the X-Taskq-Signature header of HTTP push requests
//   address.ts   parseAddress: the server address rules every taskq client shares
//   tls.ts       TlsSettings: CA file, client certificate (mTLS), server name
//   token.ts     BearerToken: the `authorization: Bearer` header of every call (token, file, env)
//
// The generated messages and enums are re-exported (Task, Queue, TaskState, ...); the
// generated schemas and service descriptors are under "@taskq/client/gen/...".

export { createTaskqClient, TaskqClient, DEFAULT_ADDRESS, MAX_MESSAGE_BYTES } from "./client.js";
export type {
  TaskqClientOptions,
  CallOptions,
  CreateTaskOptions,
  ListTasksOptions,
  LeaseTasksOptions,
  TaskRef,
} from "./client.js";
export type {
  NewTask,
  QueueSettings,
  RetrySettings,
  HttpTargetSettings,
  HttpRequestSettings,
  HttpMethodName,
} from "./requests.js";
export {
  Code,
  DOMAIN,
  TaskqError,
  QueueNotFoundError,
  TaskNotFoundError,
  QueueAlreadyExistsError,
  TaskAlreadyExistsError,
  TaskTombstonedError,
  LeaseLostError,
  QueuePausedError,
  WrongQueueTypeError,
  TaskLeasedError,
  isTaskqError,
  toTaskqError,
  statusToError,
} from "./errors.js";
export type { FieldViolation, PreconditionViolation, ResourceInfo, TaskqErrorInit } from "./errors.js";
export { parseAddress, InvalidAddressError, DEFAULT_PORT, ADDRESS_FORMS } from "./address.js";
export type { Address, Destination, Endpoint } from "./address.js";
export { InvalidTlsSettingsError } from "./tls.js";
export type { TlsSettings } from "./tls.js";
export {
  bearerToken,
  bearerTokenFrom,
  BearerToken,
  InvalidTokenError,
  PlaintextTokenError,
  TOKEN_ENV,
  TOKEN_FILE_ENV,
} from "./token.js";
export { Batcher, MAX_BATCH_ITEMS } from "./batching.js";
export type { BatchingOptions, SendBatch } from "./batching.js";
export {
  retryUnavailable,
  brokenConnectionIsUnavailable,
  DEFAULT_RETRY_BUDGET_MS,
  DEFAULT_INITIAL_BACKOFF_MS,
  DEFAULT_MAX_BACKOFF_MS,
} from "./retry.js";
export type { RetryOptions } from "./retry.js";
export { TaskStream } from "./stream.js";
export type { TaskStreamOptions, NackOptions, LeasedTask } from "./stream.js";
export { Worker } from "./worker.js";
export type { Handler, HandlerContext, WorkerOptions } from "./worker.js";
export { PullWorker } from "./pull.js";
export type { PullWorkerOptions } from "./pull.js";
export { PermanentError, RetryLater, describe, MAX_ERROR_MESSAGE_BYTES } from "./failures.js";
export { leaseLengthMs } from "./leases.js";
export { queueName, taskName, taskNameIn, taskId } from "./names.js";
export {
  verifySignature,
  verifyRequestSignature,
  SIGNATURE_HEADER,
  DEFAULT_SIGNATURE_TOLERANCE_MS,
} from "./signature.js";
export type { SignedRequest, IncomingRequest } from "./signature.js";

export type { Task, Attempt } from "./gen/taskq/v1/task_pb.js";
export { TaskState, TaskView } from "./gen/taskq/v1/task_pb.js";
export type { Queue, QueueStats, RateLimits, RetryConfig } from "./gen/taskq/v1/queue_pb.js";
export { QueueType, QueueState } from "./gen/taskq/v1/queue_pb.js";
export type { HttpTarget, HttpRequest } from "./gen/taskq/v1/http_pb.js";
export { HttpMethod } from "./gen/taskq/v1/http_pb.js";
export type { StreamTasksResponse, StreamError } from "./gen/taskq/v1/task_service_pb.js";
