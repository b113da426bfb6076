"""Client processes: producers and workers run as separate processes, started together.

A `Team` spawns one process per role (`module.function(spec, control)`), waits until each has
connected and said it is ready, then releases them all at one start time `t0`; each returns a
dict of results (records, counts, its CPU time) that the team gathers. Processes are spawned,
not forked, so none inherits gRPC or asyncio state from the harness.
"""

from __future__ import annotations

import importlib
import multiprocessing
import queue as queue_module
import time
import traceback
from typing import Self

from bench.common import Gate, cpu_seconds

CTX = multiprocessing.get_context("spawn")


class ChildFailed(RuntimeError):
    pass


class Control:
    """A child's handle on the team: say ready, wait for the start, share the flow gate."""

    def __init__(self, index: int, messages, go, t0, stop, produced, consumed, limit: int) -> None:
        self.index = index
        self._messages = messages
        self._go = go
        self._t0 = t0
        self._stop = stop
        self._produced = produced
        self._consumed = consumed
        self._limit = limit
        #: This process's CPU time when the run started, so results count the run only.
        self.cpu_at_go: float | None = None

    def ready(self) -> None:
        self._messages.put(("ready", self.index, None, None))

    def wait_go(self, timeout: float = 600.0) -> float:
        """Waits for the team's start; returns t0 (a time.time() value, maybe just ahead)."""
        if not self._go.wait(timeout):
            raise TimeoutError("the team was never started")
        t0 = self._t0.value
        self.cpu_at_go = cpu_seconds()
        delay = t0 - time.time()
        if delay > 0:
            time.sleep(delay)
        return t0

    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def gate(self) -> Gate:
        return Gate(self._produced, self._consumed, self._limit)


def _child(index: int, module: str, function: str, spec: dict, control: Control, messages) -> None:
    try:
        run = getattr(importlib.import_module(module), function)
        result = run(spec, control) or {}
        result.setdefault("cpu_s", cpu_seconds() - (control.cpu_at_go or 0.0))
        messages.put(("result", index, result, None))
    except BaseException:  # noqa: BLE001 (report everything, including KeyboardInterrupt, to the harness)
        messages.put(("result", index, None, traceback.format_exc()))


class Team:
    """The client processes of one run."""

    def __init__(self, backlog_limit: int = 10**12) -> None:
        self._messages = CTX.Queue()
        self._go = CTX.Event()
        self._t0 = CTX.Value("d", 0.0)
        self._stop = CTX.Event()
        self._produced = CTX.Value("q", 0)
        self._consumed = CTX.Value("q", 0)
        self._limit = backlog_limit
        self._members: list[tuple[str, multiprocessing.Process]] = []
        self._results: dict[int, dict] = {}
        self.t0: float | None = None

    def add(self, role: str, module: str, function: str, spec: dict) -> None:
        index = len(self._members)
        control = Control(index, self._messages, self._go, self._t0, self._stop, self._produced, self._consumed,
                          self._limit)
        process = CTX.Process(target=_child, args=(index, module, function, spec, control, self._messages),
                              name=f"bench-{role}-{index}", daemon=True)
        self._members.append((role, process))

    def start(self, timeout: float = 120.0) -> None:
        """Starts every member and waits until all are ready (connected)."""
        for _, process in self._members:
            process.start()
        ready: set[int] = set()
        deadline = time.time() + timeout
        while len(ready) < len(self._members):
            kind, index, result, error = self._next(deadline)
            if kind == "ready":
                ready.add(index)
            else:
                self._keep(index, result, error)
                ready.add(index)  # it finished (or failed) before saying ready

    def release(self, delay: float = 0.3) -> float:
        """Starts the run at now + delay for every member; returns t0."""
        self.t0 = time.time() + delay
        self._t0.value = self.t0
        self._go.set()
        return self.t0

    def request_stop(self) -> None:
        self._stop.set()

    def consumed(self) -> int:
        """Tasks the members reported handled through their gates (flushed counts)."""
        return self._consumed.value

    def wait_role(self, role: str, timeout: float) -> list[dict]:
        """Waits until every member of `role` has returned; their results (the others keep running)."""
        deadline = time.time() + timeout
        indexes = [index for index, (member_role, _) in enumerate(self._members) if member_role == role]
        while any(index not in self._results for index in indexes):
            kind, index, result, error = self._next(deadline)
            if kind == "result":
                self._keep(index, result, error)
        return [self._results[index] for index in indexes]

    def results(self, timeout: float) -> dict[str, list[dict]]:
        """Every member's result, by role; raises ChildFailed if one failed."""
        deadline = time.time() + timeout
        while len(self._results) < len(self._members):
            kind, index, result, error = self._next(deadline)
            if kind == "result":
                self._keep(index, result, error)
        by_role: dict[str, list[dict]] = {}
        for index, (role, _) in enumerate(self._members):
            by_role.setdefault(role, []).append(self._results[index])
        return by_role

    def close(self) -> None:
        """Ends every member still running (only the processes this team started): after a
        normal run they have exited or soon will; after an error they are terminated at once."""
        started = [process for _, process in self._members if process.pid is not None]
        finished = len(self._results) == len(self._members)
        deadline = time.time() + (10 if finished else 0)
        for process in started:
            process.join(timeout=max(0.0, deadline - time.time()))
        for process in started:
            if process.is_alive():
                process.terminate()
        deadline = time.time() + 5
        for process in started:
            process.join(timeout=max(0.0, deadline - time.time()))
            if process.is_alive():
                process.kill()
                process.join()
        self._messages.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _next(self, deadline: float):
        while True:
            try:
                return self._messages.get(timeout=0.5)
            except queue_module.Empty:
                dead = [process.name for _, process in self._members
                        if process.exitcode not in (None, 0)]
                if dead:
                    raise ChildFailed(f"client processes died: {', '.join(dead)}") from None
                if time.time() > deadline:
                    raise ChildFailed("timed out waiting for the client processes") from None

    def _keep(self, index: int, result: dict | None, error: str | None) -> None:
        if error is not None:
            role, process = self._members[index]
            raise ChildFailed(f"{process.name} ({role}) failed:\n{error}")
        self._results[index] = result
