// When a worker extends the leases it holds.
//
// A task reaches a worker leased for some time (a push queue's dispatch deadline, a pull
// worker's `leaseDurationMs`). While the worker still holds it, the worker extends the lease
// before it runs out: by default when half of it is left, asking for the same length again,
// so a late extension still leaves half a lease of margin for a slow network or a busy loop.
//
// The lease length comes from the server's own timestamps (expiry minus dispatch time), so
// clock skew between the machines does not matter.

import { durationMs, timestampMs } from "@bufbuild/protobuf/wkt";
import type { Task } from "./gen/taskq/v1/task_pb.js";

/** A push lease when the task says nothing of its length: the shortest dispatch deadline. */
export const FALLBACK_LEASE_MS = 15_000;

/** The length of the lease the task was delivered with, by the server's clock, ms. */
export function leaseLengthMs(task: Task): number {
  const dispatched = task.lastAttempt?.dispatchTime;
  if (task.leaseExpireTime !== undefined && dispatched !== undefined) {
    const length = timestampMs(task.leaseExpireTime) - timestampMs(dispatched);
    if (length > 0) {
      return length;
    }
  }
  if (task.dispatchDeadline !== undefined) {
    return durationMs(task.dispatchDeadline);
  }
  return FALLBACK_LEASE_MS;
}

/** A lease kept alive by a timer until `release()`. */
export interface KeptLease {
  /** Stops extending (the task was answered, or its lease is lost). */
  release(): void;
}

/**
 * Calls `extend()` every `intervalMs` (default: half of `lengthMs`) until released. An
 * `extend` that resolves false (the lease is lost) or rejects ends the extensions. The
 * timers do not keep the process alive.
 */
export function keepLease(
  lengthMs: number,
  intervalMs: number | undefined,
  extend: () => boolean | Promise<boolean>,
): KeptLease {
  const every = Math.max(1, intervalMs ?? lengthMs / 2);
  let released = false;
  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    timer = setTimeout(tick, every);
    timer.unref();
  };
  const tick = async () => {
    let keep: boolean;
    try {
      keep = await extend();
    } catch {
      keep = false;
    }
    if (keep && !released) {
      schedule();
    }
  };
  schedule();
  return {
    release() {
      released = true;
      clearTimeout(timer);
    },
  };
}
