"""Procrastinate's side (PostgreSQL scenarios g and h), with its psycopg 3 connector.

- `setup` (run by the harness): `schema_manager.apply_schema_async()`.
- `produce`: `task.defer_async(payload=...)` from `concurrency` coroutines over the connector's
  pool (`pool_size` connections); each defer is one INSERT, committed before it returns.
- `consume`: `App.run_worker_async(concurrency=...)`, an async task that records the job;
  `delete_jobs="successful"`, so a finished job is deleted like an acknowledged taskq task
  (Procrastinate's default keeps it with status `succeeded`).
- `load`: `task.batch_defer_async` of 1000 jobs.
- `pull`: `JobManager.fetch_job` + `JobManager.finish_job` (its dequeue and ack; there is no
  batch fetch: one job per call), from `concurrency` coroutines per process, until empty.

A job's arguments are JSON, so the 200-byte payload travels base64-encoded (268 characters).
"""

from __future__ import annotations

import asyncio
import base64
import time

from bench.common import Recorder, keep_running, make_payload

TASK = "bench"


def _app(spec: dict, pool_size: int, handler=None):
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=spec["dsn"], min_size=pool_size, max_size=pool_size))

    async def handle(payload: str) -> None:
        if handler is not None:
            handler(payload)

    task = app.task(name=TASK, queue=spec["queue"])(handle)
    return app, task


def _encoded() -> str:
    return base64.b64encode(make_payload()).decode()


async def setup(dsn: str) -> None:
    app, _ = _app({"dsn": dsn, "queue": "setup"}, 1)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()


def produce(spec: dict, control) -> dict:
    return asyncio.run(_produce(spec, control))


async def _produce(spec: dict, control) -> dict:
    gate = control.gate()
    app, task = _app(spec, spec.get("pool_size", 10))
    async with app.open_async():
        control.ready()
        t0 = await asyncio.to_thread(control.wait_go)
        end = t0 + spec["run_for"]

        async def loop() -> int:
            created = 0
            while time.time() < end:
                await gate.wait_room_async(end)
                await task.defer_async(payload=_encoded())
                gate.produced()
                created += 1
            return created

        counts = await asyncio.gather(*(loop() for _ in range(spec.get("concurrency", 32))))
    return {"created": sum(counts)}


def consume(spec: dict, control) -> dict:
    return asyncio.run(_consume(spec, control))


async def _consume(spec: dict, control) -> dict:
    recorder = Recorder()
    gate = control.gate()

    def handler(payload: str) -> None:
        recorder.record(base64.b64decode(payload))
        gate.consumed()

    concurrency = spec.get("concurrency", 16)
    # The worker's jobs, its LISTEN connection and its heartbeat share the pool.
    app, _ = _app(spec, spec.get("pool_size", concurrency + 2), handler)
    async with app.open_async():
        runner = asyncio.create_task(app.run_worker_async(
            queues=[spec["queue"]], concurrency=concurrency, wait=True, install_signal_handlers=False,
            delete_jobs="successful", name=f"bench-{control.index}"))
        await asyncio.sleep(0.3)  # listening by then; the warm-up covers the rest
        control.ready()
        t0 = await asyncio.to_thread(control.wait_go)
        end = t0 + spec["run_for"]
        while keep_running(spec, control, end, gate) and not runner.done():
            await asyncio.sleep(0.02)
        runner.cancel()  # a graceful stop: running jobs finish and are marked done
        try:
            await runner
        except asyncio.CancelledError:
            pass
    return recorder.result()


def load(spec: dict, control) -> dict:
    return asyncio.run(_load(spec, control))


async def _load(spec: dict, control) -> dict:
    workers = spec.get("concurrency", 2)
    app, task = _app(spec, workers)
    payload = _encoded()
    remaining = [spec["count"]]
    async with app.open_async():
        control.ready()
        await asyncio.to_thread(control.wait_go)

        async def loop() -> None:
            while remaining[0] > 0:
                size = min(1000, remaining[0])
                remaining[0] -= size
                await task.batch_defer_async(*([{"payload": payload}] * size))

        await asyncio.gather(*(loop() for _ in range(workers)))
    return {"created": spec["count"], "finished": time.time()}


def pull(spec: dict, control) -> dict:
    return asyncio.run(_pull(spec, control))


async def _pull(spec: dict, control) -> dict:
    from procrastinate import jobs

    recorder = Recorder()
    concurrency = spec.get("concurrency", 8)
    app, _ = _app(spec, concurrency)
    async with app.open_async():
        manager = app.job_manager
        worker_id = await manager.register_worker()
        control.ready()
        await asyncio.to_thread(control.wait_go)

        async def loop() -> int:
            done = 0
            while True:
                job = await manager.fetch_job(queues=[spec["queue"]], worker_id=worker_id)
                if job is None:
                    return done
                recorder.record(base64.b64decode(job.task_kwargs["payload"]))
                await manager.finish_job(job=job, status=jobs.Status.SUCCEEDED, delete_job=True)
                done += 1

        deleted = sum(await asyncio.gather(*(loop() for _ in range(concurrency))))
        finished = time.time()
        await manager.unregister_worker(worker_id)
    return {**recorder.result(), "deleted": deleted, "finished": finished}
