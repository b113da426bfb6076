"""NATS JetStream's side, with nats-py: a work-queue stream on file storage and one durable
pull consumer shared by every worker process (each message goes to one of them).

- `setup` (run by the harness): creates the stream and the consumer.
- `produce`: `js.publish` from `concurrency` coroutines; each waits for its PubAck (the
  message is stored), as each taskq create waits for its answer.
- `consume`: `fetch(batch)` then `ack()` each message (explicit acks; the work-queue stream
  deletes a message once it is acked).
- `paced`: one publish at a time at a fixed rate.
"""

from __future__ import annotations

import array
import asyncio
import time

from bench.common import Recorder, make_payload

DURABLE = "workers"


def subject_of(queue: str) -> str:
    return f"bench.{queue}"


async def _connect(spec: dict):
    import nats

    return await nats.connect(f"nats://{spec['address']}", max_reconnect_attempts=3, connect_timeout=10)


async def setup(address: str, queue: str) -> None:
    from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig

    connection = await _connect({"address": address})
    js = connection.jetstream()
    for attempt in range(50):  # JetStream may still be starting
        try:
            await js.add_stream(StreamConfig(name=queue, subjects=[subject_of(queue)],
                                             retention=RetentionPolicy.WORK_QUEUE, storage=StorageType.FILE))
            break
        except Exception:
            if attempt == 49:
                raise
            await asyncio.sleep(0.1)
    await js.add_consumer(queue, ConsumerConfig(durable_name=DURABLE, ack_policy=AckPolicy.EXPLICIT, ack_wait=300,
                                                max_ack_pending=20000))
    await connection.close()


def produce(spec: dict, control) -> dict:
    return asyncio.run(_produce(spec, control))


async def _produce(spec: dict, control) -> dict:
    connection = await _connect(spec)
    js = connection.jetstream()
    subject = subject_of(spec["queue"])
    gate = control.gate()
    control.ready()
    t0 = await asyncio.to_thread(control.wait_go)
    end = t0 + spec["run_for"]

    async def loop() -> int:
        created = 0
        while time.time() < end:
            await gate.wait_room_async(end)
            await js.publish(subject, make_payload())
            gate.produced()
            created += 1
        return created

    counts = await asyncio.gather(*(loop() for _ in range(spec.get("concurrency", 32))))
    await connection.close()
    return {"created": sum(counts)}


def consume(spec: dict, control) -> dict:
    return asyncio.run(_consume(spec, control))


async def _consume(spec: dict, control) -> dict:
    import nats.errors

    connection = await _connect(spec)
    js = connection.jetstream()
    subscription = await js.pull_subscribe_bind(DURABLE, stream=spec["queue"])
    recorder = Recorder()
    gate = control.gate()
    batch = spec.get("batch", 100)
    control.ready()
    t0 = await asyncio.to_thread(control.wait_go)
    end = t0 + spec["run_for"]
    expect = spec.get("expect")
    while time.time() < end and (expect is None or len(recorder) < expect):
        try:
            messages = await subscription.fetch(batch, timeout=0.5)
        except (TimeoutError, nats.errors.TimeoutError):
            continue
        for message in messages:
            recorder.record(message.data)
            await message.ack()
            gate.consumed()
    await connection.flush()
    await connection.close()
    return recorder.result()


def paced(spec: dict, control) -> dict:
    return asyncio.run(_paced(spec, control))


async def _paced(spec: dict, control) -> dict:
    connection = await _connect(spec)
    js = connection.jetstream()
    subject = subject_of(spec["queue"])
    control.ready()
    t0 = await asyncio.to_thread(control.wait_go)
    interval = 1.0 / spec["rate"]
    calls = array.array("d")
    for i in range(spec["count"]):
        delay = t0 + i * interval - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        started = time.time()
        await js.publish(subject, make_payload())
        calls.append(time.time() - started)
    await connection.close()
    return {"created": spec["count"], "calls": calls.tobytes()}
