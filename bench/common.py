"""What every side of the benchmark shares: payloads, the flow gate, recorders, statistics.

Every task carries a 200-byte payload whose first 16 bytes are two little-endian doubles: the
`time.time()` at which its create call started, and its ETA (0 when it has none). Workers read
them back on handler entry, so latency is create-call start -> handler entry on one clock
(everything runs on one machine).
"""

from __future__ import annotations

import array
import math
import os
import struct
import threading
import time
from collections.abc import Iterable, Sequence

PAYLOAD_BYTES = 200
_HEADER = struct.Struct("<dd")
_PADDING = b"x" * (PAYLOAD_BYTES - _HEADER.size)


def make_payload(eta: float = 0.0) -> bytes:
    """A 200-byte payload stamped with now (the create call starts right after)."""
    return _HEADER.pack(time.time(), eta) + _PADDING


def read_payload(payload: bytes) -> tuple[float, float]:
    """(created, eta) from a payload made by `make_payload`."""
    return _HEADER.unpack_from(payload, 0)


class Recorder:
    """Handler entries of one worker process: entry time, create->entry latency, ETA."""

    def __init__(self) -> None:
        self.entries = array.array("d")
        self.latencies = array.array("d")
        self.etas = array.array("d")
        self._lock = threading.Lock()

    def record(self, payload: bytes) -> None:
        now = time.time()
        created, eta = _HEADER.unpack_from(payload, 0)
        with self._lock:
            self.entries.append(now)
            self.latencies.append(now - created)
            self.etas.append(eta)

    def __len__(self) -> int:
        return len(self.entries)

    def result(self) -> dict:
        return {
            "entries": self.entries.tobytes(),
            "latencies": self.latencies.tobytes(),
            "etas": self.etas.tobytes(),
        }


def merge_records(results: Iterable[dict]) -> tuple[list[float], list[float], list[float]]:
    """Joins the recorders of several workers: (entries, latencies, etas), in entry order."""
    rows: list[tuple[float, float, float]] = []
    for result in results:
        entries = array.array("d", result.get("entries", b""))
        latencies = array.array("d", result.get("latencies", b""))
        etas = array.array("d", result.get("etas", b""))
        rows.extend(zip(entries, latencies, etas))
    rows.sort()
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


class Gate:
    """Caps the tasks created but not yet handled, across processes.

    Producers stop creating while `produced - consumed` exceeds `limit`, so a run measures a
    steady state rather than a backlog growing without bound. Counts go to the shared values
    every `every` items (a shared value costs a lock); `flush` sends the rest.

    While the gate is closed, one thread (or coroutine) of the process polls the shared counts
    every millisecond and the others wait for its verdict, so that 32 waiting producers do not
    spend the CPU the system under test needs.
    """

    def __init__(self, produced, consumed, limit: int, every: int = 50) -> None:
        self._produced = produced
        self._consumed = consumed
        self._limit = limit
        self._every = every
        self._local_produced = 0
        self._local_consumed = 0
        self._lock = threading.Lock()
        self._open = True
        self._polling = threading.Lock()
        self._opened = threading.Event()
        self._room = None  # asyncio.Event of the current async poller
        self._poller = None

    def room(self) -> bool:
        """Whether a producer may go on (checked from the shared counts, cheaply)."""
        return self._open

    def produced(self, count: int = 1) -> None:
        with self._lock:
            self._local_produced += count
            if self._local_produced < self._every:
                return
            count, self._local_produced = self._local_produced, 0
        with self._produced.get_lock():
            self._produced.value += count
        self._refresh()

    def consumed(self, count: int = 1) -> None:
        with self._lock:
            self._local_consumed += count
            if self._local_consumed < self._every:
                return
            count, self._local_consumed = self._local_consumed, 0
        with self._consumed.get_lock():
            self._consumed.value += count

    def flush(self) -> None:
        """Sends the counts not sent yet to the shared values."""
        with self._lock:
            produced, self._local_produced = self._local_produced, 0
            consumed, self._local_consumed = self._local_consumed, 0
        if produced:
            with self._produced.get_lock():
                self._produced.value += produced
        if consumed:
            with self._consumed.get_lock():
                self._consumed.value += consumed

    def _refresh(self) -> None:
        self._open = self._produced.value - self._consumed.value <= self._limit
        if self._open:
            self._opened.set()
        else:
            self._opened.clear()

    def wait_room(self, deadline: float) -> None:
        """Blocks (a thread) while the backlog is full, up to `deadline`."""
        while not self._open and time.time() < deadline:
            if self._polling.acquire(blocking=False):
                try:
                    while not self._open and time.time() < deadline:
                        time.sleep(0.001)
                        self._refresh()
                finally:
                    self._polling.release()
            else:
                self._opened.wait(min(0.05, max(0.0, deadline - time.time())))

    async def wait_room_async(self, deadline: float) -> None:
        import asyncio

        if self._open:
            return
        if self._poller is None or self._poller.done():
            self._room = asyncio.Event()
            self._poller = asyncio.ensure_future(self._poll_async(self._room, deadline))
        await self._room.wait()

    async def _poll_async(self, room, deadline: float) -> None:
        import asyncio

        try:
            while not self._open and time.time() < deadline:
                await asyncio.sleep(0.001)
                self._refresh()
        finally:
            room.set()


def keep_running(spec: dict, control, end: float, gate: Gate) -> bool:
    """Whether a worker goes on: until `end`; with spec["drain_s"], until the harness asks it to
    stop once every task created was handled (and at most drain_s past `end`). Polled every
    few ms; sends this worker's handled count to the team each time when draining."""
    drain = spec.get("drain_s")
    if not drain:
        return time.time() < end
    gate.flush()
    return not control.stop_requested() and time.time() < end + drain


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy so far (all CPUs: /proc/stat less idle and iowait),
    to see how much of a run's CPU went to processes outside it."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    guest = sum(fields[8:10]) if len(fields) > 9 else 0  # already counted in user and nice
    return (sum(fields) - idle - guest) / os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> float:
    """CPU time (user + system) of this process so far."""
    times = os.times()
    return times.user + times.system


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an already sorted sequence (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_summary(values: Iterable[float]) -> dict:
    """Milliseconds: p50, p90, p99, p99.9, max and the count."""
    ordered = sorted(values)
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 3)

    return {
        "count": len(ordered),
        "p50_ms": ms(percentile(ordered, 0.50)),
        "p90_ms": ms(percentile(ordered, 0.90)),
        "p99_ms": ms(percentile(ordered, 0.99)),
        "p999_ms": ms(percentile(ordered, 0.999)),
        "max_ms": ms(ordered[-1] if ordered else None),
    }


def loadavg() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []
