"""The event log: one JSON line per thing an operator asks about afterwards — a queue's life
cycle (created, changed, paused, resumed, purged, deleted) and what happened to tasks outside
the normal create → lease → ack path (lease expiries, nacks that ran out of retries,
dead-lettering, deletes, runs, discards of failed tasks) — from the core's event seam
(core/events.py), so only what was committed is logged.

    {"time": "2026-12-05T21:40:07.123+00:00", "event": "lease_expire", "queue": "emails",
     "task": "t-81f2", "state": "READY", "attempt": 3}

Under load the per-task lines are sampled: per event kind and queue, the first BURST lines of
each WINDOW are written, the rest counted, and when the window has passed one summary line
says how many were left out (`"event": "lease_expire", "summary": true, "suppressed": 1843`),
so a mass expiry costs a few lines, not millions. Summaries are written by run_once(), which
the loop calls when the oldest open window ends (tests call it with a FakeClock).

Lines go to the `taskq.events` logger (its own handler: stderr, or the --event-log file),
never mixed into the text of other log records.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
from collections.abc import Sequence

from taskq.core.alarm import Alarm
from taskq.core.clock import Clock
from taskq.core.events import Event, QueueEvent, TaskEvent
from taskq.core.loop import BackgroundLoop
from taskq.core.model import US_PER_SECOND

LOGGER = "taskq.events"
#: Lines per event kind and queue in one window before the rest are only counted.
BURST = 10
WINDOW_US = 10 * US_PER_SECOND

#: Task events worth a line (creates, leases, renewals and acks are the normal path: counted by
#: the metrics, not logged). The names are what the line's "event" says.
TASK_EVENT_NAMES = {
    TaskEvent.EXPIRE: "lease_expire",
    TaskEvent.NACK: "nack",
    TaskEvent.RELEASE: "release",
    TaskEvent.DEAD_LETTER: "dead_letter",
    TaskEvent.DELETE: "task_delete",
    TaskEvent.RUN: "task_run",
    TaskEvent.DISCARD: "task_discard",
}
#: Of those, the ones logged only when they say something: a nack or a release that leaves
#: the task to be retried is routine; one that ends its retries (FAILED, or on to a
#: dead-letter queue) is not.
ONLY_WHEN_FINAL = {TaskEvent.NACK, TaskEvent.RELEASE}


def timestamp(time_us: int) -> str:
    """RFC 3339 with milliseconds and the zone (UTC)."""
    moment = datetime.datetime.fromtimestamp(time_us / US_PER_SECOND, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds")


@dataclasses.dataclass
class _Window:
    start_us: int
    #: The field the window's key is (queue, or identity for audit lines).
    key_field: str
    written: int = 0
    suppressed: int = 0


class EventLog(BackgroundLoop):
    """A subscriber of Engine.events that writes the event log; a loop for its summaries."""

    MIN_INTERVAL_US = US_PER_SECOND

    def __init__(self, clock: Clock, logger: logging.Logger | None = None) -> None:
        super().__init__("event-log", clock, Alarm(clock))
        self._log = logger or logging.getLogger(LOGGER)
        self._windows: dict[tuple[str, str], _Window] = {}

    # The subscriber ------------------------------------------------------------------------

    def __call__(self, events: Sequence[Event]) -> None:
        for event in events:
            if isinstance(event.kind, QueueEvent):
                self._write(event, event.kind.value, {"changed": event.related} if event.related else {})
                continue
            name = TASK_EVENT_NAMES.get(event.kind)
            if name is None:
                continue
            if event.kind in ONLY_WHEN_FINAL and event.state is not None and event.state.name != "FAILED":
                continue
            if self._admit(name, "queue", event.queue_id, event.time_us):
                fields = {"task": event.task_id, "state": event.state.name if event.state else None,
                          "attempt": event.attempt}
                if event.related:
                    # A dead-lettering's other end (see core/events.py).
                    fields["dead_letter" if event.kind is not TaskEvent.DEAD_LETTER else "from"] = event.related
                self._write(event, name, fields)

    def audit(self, name: str, fields: dict, key_field: str) -> None:
        """A line about a call: who did what (`admin_call`) or was refused (`auth_refused`),
        sampled like task events, per event and `fields[key_field]`."""
        now_us = self._clock.now_us()
        if self._admit(name, key_field, str(fields.get(key_field)), now_us):
            line = {"time": timestamp(now_us), "event": name, **fields}
            self._log.info(json.dumps(line, separators=(", ", ": ")))

    def _admit(self, name: str, key_field: str, key_value: str, time_us: int) -> bool:
        key = (name, key_value)
        window = self._windows.get(key)
        if window is not None and time_us >= window.start_us + WINDOW_US:
            self._summarise(key, window)
            window = None
        if window is None:
            window = self._windows[key] = _Window(time_us, key_field)
            self.alarm.poke(time_us + WINDOW_US)
        if window.written < BURST:
            window.written += 1
            return True
        window.suppressed += 1
        return False

    def _write(self, event: Event, name: str, fields: dict) -> None:
        line = {"time": timestamp(event.time_us), "event": name, "queue": event.queue_id, **fields}
        self._log.info(json.dumps(line, separators=(", ", ": ")))

    def _summarise(self, key: tuple[str, str], window: _Window) -> None:
        del self._windows[key]
        if window.suppressed:
            name, value = key
            self._log.info(json.dumps({
                "time": timestamp(window.start_us + WINDOW_US), "event": name, window.key_field: value, "summary": True,
                "written": window.written, "suppressed": window.suppressed,
                "window_start": timestamp(window.start_us), "window_seconds": WINDOW_US // US_PER_SECOND,
            }, separators=(", ", ": ")))

    # The loop ------------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Writes the summaries of the windows that have ended; returns how many ended."""
        now_us = self._clock.now_us()
        ended = [(key, window) for key, window in self._windows.items() if now_us >= window.start_us + WINDOW_US]
        for key, window in ended:
            self._summarise(key, window)
        return len(ended)

    async def next_wakeup_us(self) -> int | None:
        if not self._windows:
            return None
        return min(window.start_us for window in self._windows.values()) + WINDOW_US

    async def stop(self) -> None:
        await super().stop()
        for key, window in list(self._windows.items()):
            self._summarise(key, window)


def configure(destination: str) -> logging.Logger:
    """The `taskq.events` logger writing bare JSON lines to `destination`: "stderr" or a file
    path (appended to); "off" silences it."""
    logger = logging.getLogger(LOGGER)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    if destination == "off":
        logger.disabled = True
        return logger
    logger.disabled = False
    handler = logging.StreamHandler() if destination == "stderr" else logging.FileHandler(destination, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return logger
