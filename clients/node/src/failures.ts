// How a worker's handler says that a task failed, and what the server is told.
//
// A handler that resolves has done its task. One that throws (or rejects) has failed it:
//
// - any error: the task is retried after the queue's backoff (push) or at once (pull), and
//   `Name: message` is recorded as the task's `last_attempt.error`;
// - `RetryLater(delayMs)`: retried after `delayMs` instead of the backoff;
// - `PermanentError`: never retried; the task moves to the dead-letter queue, or to
//   TASK_STATE_FAILED (push queues; a pull worker releases it like any other failure).
//
// Every failure still counts as an attempt against the queue's `max_attempts`.

import { Code } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { StatusSchema } from "./gen/google/rpc/status_pb.js";

/** The longest error message the server keeps (bytes of UTF-8); longer ones are cut here. */
export const MAX_ERROR_MESSAGE_BYTES = 4096;

/** Thrown by a handler for a task that can never succeed (a malformed payload, a deleted
 * record): the task is not retried. */
export class PermanentError extends Error {
  constructor(message?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Thrown by a handler to have the task tried again after `delayMs` instead of after the
 * queue's backoff. */
export class RetryLater extends Error {
  constructor(
    readonly delayMs: number,
    message?: string,
    options?: ErrorOptions,
  ) {
    super(message ?? `retry in ${delayMs} ms`, options);
    this.name = new.target.name;
  }
}

/** `Name: message`, cut to what the server keeps, for the task's recorded error. */
export function describe(error: unknown): string {
  let text: string;
  if (error instanceof Error) {
    text = error.message ? `${error.name}: ${error.message}` : error.name;
  } else {
    text = String(error);
  }
  const bytes = new TextEncoder().encode(text);
  if (bytes.length <= MAX_ERROR_MESSAGE_BYTES) {
    return text;
  }
  // Cut on a character boundary: the decoder drops a trailing partial character.
  return new TextDecoder().decode(bytes.subarray(0, MAX_ERROR_MESSAGE_BYTES)).replace(/\uFFFD$/, "");
}

/** The google.rpc.Status a nack carries for a handler's error. UNKNOWN: the server cannot
 * know what the failure means, only that the handler threw. */
export function failureStatus(error: unknown): MessageInitShape<typeof StatusSchema> {
  return { code: Code.Unknown, message: describe(error) };
}
