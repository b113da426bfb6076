"""Offline bulk load of a taskq data directory, for the backlog scenario (e).

    python -m bench.bulkload DATA_DIR QUEUE_ID COUNT

Creating 10M tasks through BatchCreateTasks is bound by the server's single core (~25 us of
server CPU per task, ~40k tasks/s). With the server stopped, this opens the directory with the
server's own engine and runs the same create mutation BatchCreateTasks runs (batches of 1000,
so the records, indexes and counters are exactly the server's), minus gRPC and fsync: about
twice as fast. The queue must exist. It uses taskq's internal API (taskq.core), so when that
changes it fails with exit code 3 and the harness falls back to BatchCreateTasks.
"""

from __future__ import annotations

import asyncio
import sys
import time

from bench.common import make_payload

BATCH = 1000


async def load(data_dir: str, queue_id: str, count: int) -> float:
    from taskq.core.engine import Engine
    from taskq.core.tasks import NewTask
    from taskq.store.database import Durability
    from taskq.store.rocksdb import RocksStore

    engine = Engine(lambda: RocksStore(data_dir), durability=Durability.NOSYNC, background=False)
    await engine.start()
    try:
        payload = make_payload()
        batch = [NewTask(None, payload) for _ in range(BATCH)]
        started = time.monotonic()
        remaining = count
        while remaining > 0:
            items = batch if remaining >= BATCH else batch[:remaining]
            results = await engine.tasks.create(queue_id, items)
            failed = [result for result in results if isinstance(result, Exception)]
            if failed:
                raise RuntimeError(f"create failed: {failed[0]}")
            remaining -= len(items)
        return time.monotonic() - started
    finally:
        await engine.stop()


def main(argv: list[str]) -> int:
    data_dir, queue_id, count = argv[0], argv[1], int(argv[2])
    try:
        elapsed = asyncio.run(load(data_dir, queue_id, count))
    except (ImportError, AttributeError, TypeError) as error:
        print(f"bulkload: taskq's internal API changed: {error!r}", file=sys.stderr)
        return 3
    print(f"{elapsed:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
