"""beanstalkd's side of each scenario, with the greenstalk client (one connection per process).

- `produce`: `put` in a loop (each waits for INSERTED: the job is in the binlog, fsynced or
  not depending on -f).
- `consume`: `reserve` + `delete` in a loop (the only way to take a job from beanstalkd).
- `paced`: one `put` at a time at a fixed rate.
- `pull`: `reserve` (no wait) + `delete` until the tube is empty.
- `load`: pipelined raw `put` commands (bulk load only: greenstalk waits for each answer).
- `schedule`: `put` with a delay, which beanstalkd takes in whole seconds.
"""

from __future__ import annotations

import array
import math
import random
import socket
import time

from bench.common import Recorder, make_payload

TTR = 300


def _client(spec: dict, **kwargs):
    import greenstalk

    host, _, port = spec["address"].rpartition(":")
    return greenstalk.Client((host, int(port)), encoding=None, **kwargs)


def produce(spec: dict, control) -> dict:
    client = _client(spec, use=spec["queue"])
    gate = control.gate()
    control.ready()
    t0 = control.wait_go()
    end = t0 + spec["run_for"]
    created = 0
    while time.time() < end:
        gate.wait_room(end)
        client.put(make_payload(), ttr=TTR)
        gate.produced()
        created += 1
    client.close()
    return {"created": created}


def consume(spec: dict, control) -> dict:
    import greenstalk

    client = _client(spec, watch=spec["queue"])
    recorder = Recorder()
    gate = control.gate()
    control.ready()
    t0 = control.wait_go()
    end = t0 + spec["run_for"]
    expect = spec.get("expect")
    while time.time() < end and (expect is None or len(recorder) < expect):
        try:
            job = client.reserve(timeout=1)
        except greenstalk.TimedOutError:
            continue
        recorder.record(job.body)
        client.delete(job)
        gate.consumed()
    client.close()
    return recorder.result()


def paced(spec: dict, control) -> dict:
    client = _client(spec, use=spec["queue"])
    control.ready()
    t0 = control.wait_go()
    interval = 1.0 / spec["rate"]
    calls = array.array("d")
    for i in range(spec["count"]):
        delay = t0 + i * interval - time.time()
        if delay > 0:
            time.sleep(delay)
        started = time.time()
        client.put(make_payload(), ttr=TTR)
        calls.append(time.time() - started)
    client.close()
    return {"created": spec["count"], "calls": calls.tobytes()}


def pull(spec: dict, control) -> dict:
    import greenstalk

    client = _client(spec, watch=spec["queue"])
    recorder = Recorder()
    control.ready()
    control.wait_go()
    deleted = 0
    while True:
        try:
            job = client.reserve(timeout=0)
        except greenstalk.TimedOutError:
            break
        recorder.record(job.body)
        client.delete(job)
        deleted += 1
    finished = time.time()
    client.close()
    return {**recorder.result(), "deleted": deleted, "finished": finished}


def load(spec: dict, control) -> dict:
    """Puts `count` jobs, 1000 commands written before their answers are read."""
    host, _, port = spec["address"].rpartition(":")
    sock = socket.create_connection((host, int(port)))
    reader = sock.makefile("rb")
    sock.sendall(f"use {spec['queue']}\r\n".encode())
    reader.readline()
    payload = make_payload()
    command = f"put 0 0 {TTR} {len(payload)}\r\n".encode() + payload + b"\r\n"
    control.ready()
    control.wait_go()
    remaining = spec["count"]
    while remaining > 0:
        size = min(1000, remaining)
        sock.sendall(command * size)
        for _ in range(size):
            answer = reader.readline()
            if not answer.startswith(b"INSERTED"):
                raise RuntimeError(f"beanstalkd answered {answer!r} to a put")
        remaining -= size
    sock.close()
    return {"created": spec["count"], "finished": time.time()}


def schedule(spec: dict, control) -> dict:
    """Puts `count` jobs due at t0 + lead + U(0, spread); beanstalkd delays are whole seconds
    from the put, so each job's real ETA (put time + delay) is what goes in its payload."""
    client = _client(spec, use=spec["queue"])
    control.ready()
    t0 = control.wait_go()
    first = t0 + spec["lead"]
    rng = random.Random(spec.get("seed", 1) + control.index)
    late_created = 0
    for _ in range(spec["count"]):
        target = first + rng.random() * spec["spread"]
        now = time.time()
        delay = max(0, math.floor(target - now + 0.5))
        client.put(make_payload(now + delay), delay=delay, ttr=TTR)
        late_created += target < time.time()
    client.close()
    return {"created": spec["count"], "created_after_eta": late_created, "finished": time.time()}
