// Retrying calls that fail with UNAVAILABLE, and the backoff the workers reconnect with.
//
// Connect has no retry policy of its own, so `retryUnavailable` is an interceptor: a unary
// call that fails with UNAVAILABLE (the server is unreachable, starting, or draining for
// shutdown) is made again after an exponential, jittered backoff, within the call's own
// deadline and AbortSignal. Streams are not retried: a retried stream would silently restart
// a worker's subscription (the Worker reconnects on its own, with `Backoff`).
//
// A retried call may have reached the server the first time. `TaskqClient.createTask`
// therefore always sends a `request_id`, which makes a repeated create return the first task
// instead of adding a second; a retried acknowledgement may answer LEASE_LOST for a task
// that the first attempt did delete.

import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/** How unary calls are retried on UNAVAILABLE. */
export interface RetryOptions {
  /** Attempts in all, the first included. Default 5. */
  maxAttempts?: number;
  /** The wait before the second attempt, ms; it doubles after each attempt. Default 200. */
  initialBackoffMs?: number;
  /** The longest wait between attempts, ms. Default 5000. */
  maxBackoffMs?: number;
}

/** An interceptor that retries unary calls failing with UNAVAILABLE; see the module comment. */
export function retryUnavailable(options: RetryOptions = {}): Interceptor {
  const maxAttempts = options.maxAttempts ?? 5;
  const initialBackoffMs = options.initialBackoffMs ?? 200;
  const maxBackoffMs = options.maxBackoffMs ?? 5000;
  return (next) => async (request) => {
    if (request.stream) {
      return next(request);
    }
    const backoff = new Backoff(initialBackoffMs, maxBackoffMs);
    for (let attempt = 1; ; attempt++) {
      try {
        return await next(request);
      } catch (error) {
        const code = ConnectError.from(error).code;
        if (code !== Code.Unavailable || attempt >= maxAttempts || request.signal.aborted) {
          throw error;
        }
        if (!(await sleep(backoff.next(), request.signal))) {
          throw error; // the deadline passed or the caller aborted while waiting
        }
      }
    }
  };
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

/** Waits `ms`; resolves true, or false as soon as `signal` aborts. The timer does not keep
 * the process alive. */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) {
    return Promise.resolve(false);
  }
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
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
