"""Housekeeping at scale: does a write stay fast while 20,000 queues' leases, tombstones and
request ids all fall due at once?

    .venv/bin/python -m bench.housekeeping                 # 20,000 queues
    .venv/bin/python -m bench.housekeeping --queues 2000   # smaller

In one process, on a RocksDB directory in a temporary directory (default durable mode), with
the reaper, janitor and purger running on a clock the benchmark moves: every queue gets a
named task created with a request id and leased for 60 s, and a named task acknowledged (its
name tombstoned for 60 s). Then it measures sequential creates on one more queue twice: with
nothing due ("idle"), and right after the clock jumps two hours, while the background loops
work through 20,000 expired leases, 20,000 tombstones and 20,000 (queue, hour) request-id
buckets ("while due"). It prints both latency distributions, the longest the writer was held
by one commit, and how long the housekeeping took. Nothing is asserted: this is a figure for
docs/performance.md, to be compared within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

from taskq.core.clock import FakeClock
from taskq.core.engine import Engine
from taskq.core.model import US_PER_SECOND, Queue, QueueType, RetryPolicy
from taskq.core.tasks import DeleteRequest, NewTask
from taskq.store.rocksdb import RocksStore

S = US_PER_SECOND


def _queue(queue_id: str) -> Queue:
    return Queue(queue_id, QueueType.PULL, RetryPolicy(0, 0, S // 10, 3600 * S, 16), 600 * S, 31 * 86400 * S,
                 tombstone_ttl_us=60 * S)


async def _creates(engine: Engine, count: int) -> list[float]:
    """Latencies (ms) of `count` sequential single-task creates on the probe queue."""
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        await engine.tasks.create("probe", [NewTask(None, b"x")])
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def _summary(name: str, latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"{name:>10}: {len(ordered)} creates, p50 {statistics.median(ordered):.2f} ms, "
            f"p99 {p99:.2f} ms, max {ordered[-1]:.2f} ms")


async def measure(queues: int, probes: int) -> None:
    clock = FakeClock()
    with tempfile.TemporaryDirectory(prefix="taskq-housekeeping-") as directory:
        engine = Engine(lambda: RocksStore(directory), clock=clock, background=True)
        await engine.start()
        try:
            started = time.perf_counter()
            await engine.queues.create(_queue("probe"))
            for index in range(queues):
                queue_id = f"q{index}"
                await engine.queues.create(_queue(queue_id))
                await engine.tasks.create(queue_id, [NewTask("leased", request_id=f"r{index}"), NewTask("done")])
                await engine.tasks.lease(queue_id, 60 * S, 1, None, False, 0)
                [done] = await engine.tasks.lease(queue_id, 60 * S, 1, None, False, 0)
                await engine.tasks.delete(queue_id, [DeleteRequest(done.task_id, done.lease_token)])
            print(f"set up {queues} queues in {time.perf_counter() - started:.1f} s")
            idle = await _creates(engine, probes)
            passes = (engine.reaper.passes, engine.janitor.passes)
            clock.advance(2 * 3600)  # every lease, tombstone and request-id hour is now due
            started = time.perf_counter()
            busy = await _creates(engine, probes)
            while await engine.db.read(
                lambda r: r.next_lease_expiry() is not None or r.next_expiry() is not None
                or r.first_request_hour() is not None
            ):
                await asyncio.sleep(0.01)
            took = time.perf_counter() - started
            print(_summary("idle", idle))
            print(_summary("while due", busy))
            print(f"housekeeping of {queues} queues took {took:.2f} s in "
                  f"{engine.reaper.passes - passes[0]} reaper and {engine.janitor.passes - passes[1]} janitor passes")
        finally:
            await engine.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queues", type=int, default=20_000)
    parser.add_argument("--probes", type=int, default=2000, help="creates measured in each phase")
    arguments = parser.parse_args()
    asyncio.run(measure(arguments.queues, arguments.probes))


if __name__ == "__main__":
    main()
