// Retrying unary calls that fail with UNAVAILABLE, across a restart of the server, and the
// backoff the workers reconnect with.
//
// UNAVAILABLE means the server could not be reached, is starting, or is stopping: a restart
// shows it for a few seconds. Connect has no retry policy of its own, so `retryUnavailable`
// is an interceptor that makes a unary call again, after a wait, until it gets another answer
// or the retry budget is spent:
//
// - waits are exponential with full jitter: a random time between 0 and a ceiling that starts
//   at `initialBackoffMs` and doubles up to `maxBackoffMs`, so that many clients coming back
//   after a restart spread out; a RetryInfo the server sends (1 s while it starts) is
//   honoured: the wait is at least that long;
// - a call stops retrying `budgetMs` (default 15 s) after its first UNAVAILABLE, and never
//   waits past its own deadline (`timeoutMs`), which covers every attempt, or once its
//   AbortSignal aborts; the last UNAVAILABLE is thrown then;
// - every attempt sends the same request message, so a create carries the same request_id on
//   every attempt: it is chosen once, when the request is built, before the first one.
//
// Only UNAVAILABLE is retried (and a broken connection, see `brokenConnectionIsUnavailable`).
// DEADLINE_EXCEEDED is not: the deadline covers all attempts, so once an attempt hits it the
// call has no time left. Streams are not retried: a retried stream would silently restart a
// worker's subscription (the Worker reconnects on its own, with `Backoff`).
//
// An attempt that failed with UNAVAILABLE may still have reached the server, which may have
// done the work and lost only the answer. Each call is safe to resend:
//
// - creates (CreateTask, each item of BatchCreateTasks) carry a request id, so the server
//   answers a repeat with the task the first attempt created; a create sent without one
//   (`requestId: ""`) is not retried;
// - reads (Get*, List*, GetQueueStats) change nothing;
// - DeleteTask / BatchDeleteTasks with a lease token (acknowledgements): the server answers a
//   repeated acknowledgement with the same token as it answered the first (a server without
//   that fix answers LEASE_LOST, though the task was acknowledged); a delete without a token
//   that was done the first time answers TASK_NOT_FOUND;
// - ModifyLease sets the lease to end a duration from now: a repeat sets it again (a release
//   repeated answers LEASE_LOST, the task having been released once);
// - LeaseTasks: tasks leased by an attempt whose answer was lost are held by nobody until
//   their lease expires; then they are ready again (the attempt counts);
// - RunTask, UpdateQueue, PauseQueue and ResumeQueue set a state: repeating sets it again;
//   CreateQueue and DeleteQueue repeated answer QUEUE_ALREADY_EXISTS / QUEUE_NOT_FOUND;
// - PurgeQueue is NOT retried: a second purge would also delete the tasks created since the
//   first one.

import { Code, ConnectError, type Interceptor, type UnaryRequest } from "@connectrpc/connect";
import { parseTimeout } from "@connectrpc/connect/protocol-grpc";
import { toTaskqError } from "./errors.js";

/** How long a call keeps retrying after its first UNAVAILABLE, ms: a restart takes seconds. */
export const DEFAULT_RETRY_BUDGET_MS = 15_000;
/** The ceiling of the first wait between attempts, ms. */
export const DEFAULT_INITIAL_BACKOFF_MS = 100;
/** The largest ceiling a wait grows to, ms. */
export const DEFAULT_MAX_BACKOFF_MS = 2_000;
/** Each wait's ceiling is this many times the previous one. */
const BACKOFF_MULTIPLIER = 2;

/** How unary calls failing with UNAVAILABLE are retried; see the module comment. */
export interface RetryOptions {
  /** How long a call keeps retrying after its first UNAVAILABLE, ms; its deadline and its
   * AbortSignal stop it sooner. Default 15,000. */
  budgetMs?: number;
  /** The ceiling of the first wait, ms; each wait is a random time between 0 and its
   * ceiling. Default 100. */
  initialBackoffMs?: number;
  /** The largest ceiling, ms, doubling from `initialBackoffMs`. Default 2,000. */
  maxBackoffMs?: number;
  /** Attempts in all, the first included; default: as many as fit in the budget. */
  maxAttempts?: number;
}

/** An interceptor that retries unary calls failing with UNAVAILABLE; see the module comment.
 * `closed` aborts when the client closes: a call waiting to be retried then gives up. */
export function retryUnavailable(options: RetryOptions = {}, closed?: AbortSignal): Interceptor {
  const policy = {
    budgetMs: options.budgetMs ?? DEFAULT_RETRY_BUDGET_MS,
    initialBackoffMs: options.initialBackoffMs ?? DEFAULT_INITIAL_BACKOFF_MS,
    maxBackoffMs: Math.max(options.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS, options.initialBackoffMs ?? 0),
  };
  const maxAttempts = options.maxAttempts ?? Infinity;
  return (next) => async (request) => {
    if (request.stream || !mayResend(request)) {
      return next(request);
    }
    const timeoutMs = parseTimeout(request.header.get("grpc-timeout"), Number.MAX_SAFE_INTEGER).timeoutMs;
    const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    const backoff = new RetryBackoff(policy, deadline);
    for (let attempt = 1; ; attempt++) {
      try {
        // The same message on every attempt (a create keeps its request_id), with the time
        // left until the call's deadline as the attempt's grpc-timeout.
        return await next(attempt === 1 ? request : withTimeLeft(request, deadline));
      } catch (error) {
        const wait = attempt >= maxAttempts || request.signal.aborted || closed?.aborted
          ? undefined
          : backoff.next(error);
        if (wait === undefined || !(await sleep(wait, request.signal, closed))) {
          throw error; // not retried, the budget or deadline is spent, or the caller aborted
        }
      }
    }
  };
}

/** Whether a request may be sent again after an attempt that may have reached the server. */
export function mayResend(request: UnaryRequest): boolean {
  const message = request.message as { requestId?: string; requests?: { requestId?: string }[] };
  switch (request.method.name) {
    case "CreateTask":
      return Boolean(message.requestId);
    case "BatchCreateTasks":
      return (message.requests ?? []).every((item) => Boolean(item.requestId));
    case "PurgeQueue":
      return false;
    default:
      return true;
  }
}

function withTimeLeft(request: UnaryRequest, deadline: number | undefined): UnaryRequest {
  if (deadline === undefined) {
    return request;
  }
  const header = new Headers(request.header);
  header.set("grpc-timeout", `${Math.max(1, Math.ceil(deadline - Date.now()))}m`);
  return { ...request, header };
}

/** The waits between the attempts of one call. `deadline` is the call's, epoch ms. */
export class RetryBackoff {
  #ceilingMs: number;
  #giveUpAt: number | undefined;

  constructor(
    private readonly policy: { budgetMs: number; initialBackoffMs: number; maxBackoffMs: number },
    private readonly deadline: number | undefined,
    private readonly now: () => number = Date.now,
    private readonly random: () => number = Math.random,
  ) {
    this.#ceilingMs = policy.initialBackoffMs;
  }

  /** Ms to wait before the next attempt after `error`; undefined when it is not retried or
   * no attempt fits in the budget any more: then throw it. */
  next(error: unknown): number | undefined {
    const failure = toTaskqError(error);
    if (failure.code !== Code.Unavailable || this.policy.budgetMs <= 0) {
      return undefined;
    }
    const now = this.now();
    this.#giveUpAt ??= Math.min(now + this.policy.budgetMs, this.deadline ?? Infinity);
    let wait = this.random() * this.#ceilingMs;
    this.#ceilingMs = Math.min(this.#ceilingMs * BACKOFF_MULTIPLIER, this.policy.maxBackoffMs);
    if (failure.retryDelayMs !== undefined) {
      wait = Math.max(wait, failure.retryDelayMs);
    }
    // An attempt that could only start at the deadline would fail with DEADLINE_EXCEEDED and
    // hide the UNAVAILABLE that says what is wrong.
    return now + wait >= this.#giveUpAt ? undefined : wait;
  }
}

/**
 * An interceptor that reports a unary call whose connection broke as UNAVAILABLE, as the gRPC
 * protocol (and the other taskq clients) does. Connect for Node reports it otherwise, depending
 * on where the break is noticed first: Node's http2 module closes the streams of a dead
 * connection with RST_STREAM CANCEL (Connect: CANCELED), or the socket fails with ECONNRESET,
 * or the stream is destroyed (Connect: ABORTED, with Node's error as the cause). The caller did
 * not cancel, and the server may or may not have done the work: exactly UNAVAILABLE, which
 * `retryUnavailable` retries. So is a CANCELLED status the server sent: a server stopping
 * gracefully cancels the calls it has received but not yet handled, and a restart must cost
 * callers only time. A CANCELED after the caller's own signal aborted stays CANCELED;
 * an ABORTED status the server sent (no Node error under it) stays ABORTED.
 */
export function brokenConnectionIsUnavailable(): Interceptor {
  return (next) => async (request) => {
    if (request.stream) {
      return next(request);
    }
    try {
      return await next(request);
    } catch (error) {
      const failure = ConnectError.from(error);
      const broken =
        !request.signal.aborted &&
        (failure.code === Code.Canceled || (failure.code === Code.Aborted && causedByNode(failure)));
      if (!broken) {
        throw error;
      }
      // A reset stream or a dead socket carries no status details to keep.
      const message = `the connection broke: ${failure.rawMessage}`;
      throw new ConnectError(message, Code.Unavailable, failure.metadata, undefined, failure);
    }
  };
}

/** Whether an error was made from a Node error (a system or stream error code such as
 * ECONNRESET), rather than from a status the server sent. */
function causedByNode(error: ConnectError): boolean {
  const seen = new Set<unknown>();
  for (let cause: unknown = error.cause; cause instanceof Error && !seen.has(cause); cause = cause.cause) {
    seen.add(cause);
    if (typeof (cause as { code?: unknown }).code === "string") {
      return true;
    }
  }
  return false;
}

/** Exponential backoff with "equal jitter": each wait is a random time in [d/2, d], where d
 * starts at `initialMs` and doubles up to `maxMs`. */
export class Backoff {
  #current: number;

  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
  ) {
    this.#current = initialMs;
  }

  /** The next wait, ms. */
  next(): number {
    const wait = this.#current * (0.5 + Math.random() / 2);
    this.#current = Math.min(this.#current * 2, this.maxMs);
    return wait;
  }

  /** Starts again from the initial wait (after a success). */
  reset(): void {
    this.#current = this.initialMs;
  }
}

/** Waits `ms`; resolves true, or false as soon as one of the signals aborts. The timer does
 * not keep the process alive. */
export function sleep(ms: number, ...signals: (AbortSignal | undefined)[]): Promise<boolean> {
  const given = signals.filter((signal): signal is AbortSignal => signal !== undefined);
  if (given.some((signal) => signal.aborted)) {
    return Promise.resolve(false);
  }
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      given.forEach((signal) => signal.removeEventListener("abort", onAbort));
      resolve(false);
    };
    const timer = setTimeout(() => {
      given.forEach((signal) => signal.removeEventListener("abort", onAbort));
      resolve(true);
    }, ms);
    given.forEach((signal) => signal.addEventListener("abort", onAbort, { once: true }));
  });
}

/** Waits for `promise` to settle, at most `ms`: true if it did in time. Its timer is cleared
 * either way, so it never holds the process open. */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const timer = new AbortController();
  try {
    return await Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      sleep(ms, timer.signal).then(() => false),
    ]);
  } finally {
    timer.abort();
  }
}
