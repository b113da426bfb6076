"""taskq's side of each scenario, run inside a client process, with the real Python client.

- `produce`: `Client.create_task` from `concurrency` threads; the client's default batching
  coalesces their calls into BatchCreateTasks (what a user of the client gets by default).
  `produce_async`: the same with `AsyncClient.create_task` from coroutines (--taskq-producer).
- `consume`: a push `Worker` with an async handler that records the task and returns (ack).
- `paced`: one create at a time, batching off, at a fixed rate (latency, scenario c).
- `pull` / `pull_worker`: LeaseTasks(100) + BatchDeleteTasks in a loop / a `PullWorker`.
- `load`: BatchCreateTasks of 1000 from several threads, the same request resent (bulk load).
- `schedule`: tasks with ETAs, created with `Client.create_tasks` in batches of 1000.

Every function takes (spec, control): `spec` says where and how much, `control` is the team's
(see bench.procs); it returns a dict of counts and records.
"""

from __future__ import annotations

import array
import asyncio
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bench.common import Recorder, keep_running, make_payload


def _client(address: str, **kwargs):
    from taskq.client import Client

    return Client(address, **kwargs)


def produce(spec: dict, control) -> dict:
    client = _client(spec["address"])
    gate = control.gate()
    queue = spec["queue"]
    client.get_queue(queue)  # connected
    control.ready()
    t0 = control.wait_go()
    end = t0 + spec["run_for"]

    def loop() -> int:
        created = 0
        while time.time() < end:
            gate.wait_room(end)
            client.create_task(queue, make_payload())
            gate.produced()
            created += 1
        return created

    threads = spec.get("concurrency", 32)
    with ThreadPoolExecutor(threads, thread_name_prefix="bench-produce") as pool:
        created = sum(pool.map(lambda _: loop(), range(threads)))
    client.close()
    return {"created": created}


def produce_async(spec: dict, control) -> dict:
    """`AsyncClient.create_task` from `concurrency` coroutines (default batching too)."""
    return asyncio.run(_produce_async(spec, control))


async def _produce_async(spec: dict, control) -> dict:
    from taskq.client import AsyncClient

    gate = control.gate()
    queue = spec["queue"]
    async with AsyncClient(spec["address"]) as client:
        await client.get_queue(queue)
        control.ready()
        t0 = await asyncio.to_thread(control.wait_go)
        end = t0 + spec["run_for"]

        async def loop() -> int:
            created = 0
            while time.time() < end:
                await gate.wait_room_async(end)
                await client.create_task(queue, make_payload())
                gate.produced()
                created += 1
            return created

        counts = await asyncio.gather(*(loop() for _ in range(spec.get("concurrency", 32))))
    return {"created": sum(counts)}


def consume(spec: dict, control) -> dict:
    from taskq.client import Worker

    recorder = Recorder()
    dispatches = array.array("d")
    gate = control.gate()
    keep_dispatch = spec.get("dispatch_times", False)

    async def handler(task) -> None:
        recorder.record(task.payload)
        if keep_dispatch:
            stamp = task.last_attempt.dispatch_time
            dispatches.append(stamp.seconds + stamp.nanos / 1e9)
        gate.consumed()

    worker = Worker(spec["address"], spec["queue"], handler, concurrency=spec.get("concurrency", 8),
                    max_outstanding=spec.get("max_outstanding"))

    async def main() -> None:
        runner = asyncio.create_task(worker.run_async())
        await asyncio.sleep(0.3)  # subscribed by then on an idle machine; the warm-up covers the rest
        control.ready()
        t0 = await asyncio.to_thread(control.wait_go)
        end = t0 + spec["run_for"]
        while keep_running(spec, control, end, gate) and not runner.done() and not _done(spec, recorder):
            await asyncio.sleep(0.02)
        worker.stop(grace_period=2)
        await runner

    asyncio.run(main())
    return {**recorder.result(), "dispatches": dispatches.tobytes()}


def _done(spec: dict, recorder: Recorder) -> bool:
    expect = spec.get("expect")
    return expect is not None and len(recorder) >= expect


def paced(spec: dict, control) -> dict:
    from taskq.client import BatchSettings

    client = _client(spec["address"], batching=BatchSettings(max_delay=0))
    queue = spec["queue"]
    client.get_queue(queue)
    control.ready()
    t0 = control.wait_go()
    interval = 1.0 / spec["rate"]
    calls = array.array("d")
    for i in range(spec["count"]):
        delay = t0 + i * interval - time.time()
        if delay > 0:
            time.sleep(delay)
        started = time.time()
        client.create_task(queue, make_payload(), batch=False)
        calls.append(time.time() - started)
    client.close()
    return {"created": spec["count"], "calls": calls.tobytes()}


def pull(spec: dict, control) -> dict:
    """LeaseTasks(max 100) then BatchDeleteTasks of what was leased, until the queue is empty."""
    client = _client(spec["address"])
    queue = spec["queue"]
    recorder = Recorder()
    client.get_queue(queue)
    control.ready()
    control.wait_go()
    deleted = 0
    while True:
        tasks = client.lease_tasks(queue, lease_duration=300, max_tasks=spec.get("batch", 100))
        if not tasks:
            break
        for task in tasks:
            recorder.record(task.payload)
        errors = client.delete_tasks(queue, tasks)
        deleted += sum(1 for error in errors if error is None)
    finished = time.time()
    client.close()
    return {**recorder.result(), "deleted": deleted, "finished": finished}


def pull_worker(spec: dict, control) -> dict:
    """A `PullWorker` (batch_size 100) that stops once the queue has stayed empty 0.5 s."""
    from taskq.client import PullWorker

    recorder = Recorder()
    last = [time.time()]

    def handler(task) -> None:
        recorder.record(task.payload)
        last[0] = time.time()

    worker = PullWorker(spec["address"], spec["queue"], handler, lease_duration=300,
                        batch_size=spec.get("batch", 100), concurrency=spec.get("concurrency", 100), wait=0.2)
    control.ready()
    t0 = control.wait_go()
    last[0] = t0

    def watch() -> None:
        while time.time() - last[0] < 0.5:
            time.sleep(0.05)
        worker.stop(grace_period=5)

    threading.Thread(target=watch, daemon=True).start()
    worker.run(handle_signals=False)
    return {**recorder.result(), "deleted": len(recorder), "finished": last[0]}


def load(spec: dict, control) -> dict:
    """Creates `count` tasks with BatchCreateTasks of 1000 from `concurrency` threads."""
    from taskq.client import requests
    from taskq.client.channel import create_channel
    from taskq.v1 import task_service_pb2_grpc

    channel = create_channel(spec["address"])
    stub = task_service_pb2_grpc.TaskServiceStub(channel)
    batch = spec.get("batch", 1000)
    # The same request is sent again and again, so its items carry no request_id (a repeated
    # request_id would make the server answer with the tasks it created the first time).
    item = {"payload": make_payload(), "request_id": ""}
    request = requests.batch_create_tasks_request(spec["queue"], [item] * batch)
    remaining = [spec["count"]]
    lock = threading.Lock()
    control.ready()
    control.wait_go()

    def loop() -> int:
        created = 0
        while True:
            with lock:
                size = min(batch, remaining[0])
                remaining[0] -= size
            if size <= 0:
                return created
            if size == batch:
                stub.BatchCreateTasks(request, timeout=120)
            else:
                partial = requests.batch_create_tasks_request(spec["queue"], [item] * size)
                stub.BatchCreateTasks(partial, timeout=120)
            created += size

    threads = spec.get("concurrency", 4)
    with ThreadPoolExecutor(threads, thread_name_prefix="bench-load") as pool:
        created = sum(pool.map(lambda _: loop(), range(threads)))
    channel.close()
    return {"created": created, "finished": time.time()}


def schedule(spec: dict, control) -> dict:
    """Creates `count` tasks with ETAs uniform over [t0 + lead, t0 + lead + spread]."""
    client = _client(spec["address"])
    queue = spec["queue"]
    client.get_queue(queue)
    control.ready()
    t0 = control.wait_go()
    first = t0 + spec["lead"]
    rng = random.Random(spec.get("seed", 1))
    late_created = 0
    remaining = spec["count"]
    lock = threading.Lock()

    def loop() -> int:
        nonlocal remaining
        late = 0
        while True:
            with lock:
                size = min(1000, remaining)
                remaining -= size
                etas = [first + rng.random() * spec["spread"] for _ in range(size)]
            if size <= 0:
                return late
            client.create_tasks(queue, [{"payload": make_payload(eta), "schedule_time": eta} for eta in etas])
            done = time.time()
            late += sum(1 for eta in etas if eta < done)

    with ThreadPoolExecutor(spec.get("concurrency", 2)) as pool:
        late_created = sum(pool.map(lambda _: loop(), range(spec.get("concurrency", 2))))
    client.close()
    return {"created": spec["count"], "created_after_eta": late_created, "finished": time.time()}
