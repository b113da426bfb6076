"""PgQueuer's side (PostgreSQL scenarios g and h), with its asyncpg driver as its README shows.

- `setup` (run by the harness): `Queries.install()`, PgQueuer's schema with its default
  durability (`durable`: every table logged).
- `produce`: `Queries.enqueue(entrypoint, payload)` from `concurrency` coroutines over an asyncpg
  pool (`pool_size` connections); each enqueue is one INSERT, committed before it returns.
- `consume`: a `QueueManager` with one async entrypoint that records the job, run with
  `batch_size` (jobs per dequeue); PgQueuer deletes a finished job (moving it to its log
  table) in buffered batches (`JobStatusLogBuffer`: every `batch_size` jobs or 0.1 s).
- `load`: `Queries.enqueue` of lists of 1000 (its batch insert).
- `pull`: `Queries.dequeue(batch_size=100)` then `Queries.log_jobs` of the batch (its "done":
  the jobs are deleted from the queue), until the queue is empty.

A payload is the 200 bytes of bench.common, stored as PgQueuer's bytea payload.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

from bench.common import Recorder, keep_running, make_payload

ENTRYPOINT = "bench"


async def _pool(spec: dict, size: int):
    import asyncpg

    return await asyncpg.create_pool(spec["url"], min_size=size, max_size=size)


async def setup(url: str) -> None:
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    connection = await asyncpg.connect(url)
    try:
        await Queries(AsyncpgDriver(connection)).install()
    finally:
        await connection.close()


def produce(spec: dict, control) -> dict:
    return asyncio.run(_produce(spec, control))


async def _produce(spec: dict, control) -> dict:
    from pgqueuer.db import AsyncpgPoolDriver
    from pgqueuer.queries import Queries

    gate = control.gate()
    pool = await _pool(spec, spec.get("pool_size", 10))
    queries = Queries(AsyncpgPoolDriver(pool))
    control.ready()
    t0 = await asyncio.to_thread(control.wait_go)
    end = t0 + spec["run_for"]

    async def loop() -> int:
        created = 0
        while time.time() < end:
            await gate.wait_room_async(end)
            await queries.enqueue(ENTRYPOINT, make_payload())
            gate.produced()
            created += 1
        return created

    counts = await asyncio.gather(*(loop() for _ in range(spec.get("concurrency", 32))))
    await pool.close()
    return {"created": sum(counts)}


def consume(spec: dict, control) -> dict:
    return asyncio.run(_consume(spec, control))


async def _consume(spec: dict, control) -> dict:
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.models import Job
    from pgqueuer.qm import QueueManager
    from pgqueuer.queries import Queries

    recorder = Recorder()
    gate = control.gate()
    connection = await asyncpg.connect(spec["url"])
    manager = QueueManager(Queries(AsyncpgDriver(connection)))

    @manager.entrypoint(ENTRYPOINT)
    async def handle(job: Job) -> None:
        recorder.record(job.payload)
        gate.consumed()

    runner = asyncio.create_task(manager.run(batch_size=spec.get("batch", 10),
                                             dequeue_timeout=timedelta(seconds=5)))
    await asyncio.sleep(0.3)  # listening by then; the warm-up covers the rest
    control.ready()
    t0 = await asyncio.to_thread(control.wait_go)
    end = t0 + spec["run_for"]
    while keep_running(spec, control, end, gate) and not runner.done():
        await asyncio.sleep(0.02)
    manager.shutdown.set()
    await runner  # flushes the buffered "done" log of the jobs handled
    await connection.close()
    return recorder.result()


def load(spec: dict, control) -> dict:
    return asyncio.run(_load(spec, control))


async def _load(spec: dict, control) -> dict:
    from pgqueuer.db import AsyncpgPoolDriver
    from pgqueuer.queries import Queries

    workers = spec.get("concurrency", 2)
    pool = await _pool(spec, workers)
    queries = Queries(AsyncpgPoolDriver(pool))
    payload = make_payload()
    remaining = [spec["count"]]
    control.ready()
    await asyncio.to_thread(control.wait_go)

    async def loop() -> None:
        while remaining[0] > 0:
            size = min(1000, remaining[0])
            remaining[0] -= size
            await queries.enqueue([ENTRYPOINT] * size, [payload] * size, [0] * size)

    await asyncio.gather(*(loop() for _ in range(workers)))
    await pool.close()
    return {"created": spec["count"], "finished": time.time()}


def pull(spec: dict, control) -> dict:
    return asyncio.run(_pull(spec, control))


async def _pull(spec: dict, control) -> dict:
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import EntrypointExecutionParameter, Queries

    recorder = Recorder()
    connection = await asyncpg.connect(spec["url"])
    queries = Queries(AsyncpgDriver(connection))
    entrypoints = {ENTRYPOINT: EntrypointExecutionParameter(concurrency_limit=0)}
    manager_id = uuid.uuid4()
    control.ready()
    await asyncio.to_thread(control.wait_go)
    deleted = 0
    while True:
        jobs = await queries.dequeue(batch_size=spec.get("batch", 100), entrypoints=entrypoints,
                                     queue_manager_id=manager_id, global_concurrency_limit=None,
                                     heartbeat_timeout=timedelta(seconds=300))
        if not jobs:
            break
        for job in jobs:
            recorder.record(job.payload)
        await queries.log_jobs([(job, "successful", None) for job in jobs])
        deleted += len(jobs)
    finished = time.time()
    await connection.close()
    return {**recorder.result(), "deleted": deleted, "finished": finished}
