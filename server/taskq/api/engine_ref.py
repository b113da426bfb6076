"""The servicers' handle on the core, which exists only once the database is open.

The gRPC server starts listening (health NOT_SERVING) before the database has finished
opening; calls that arrive meanwhile get UNAVAILABLE with reason NOT_READY and a RetryInfo.
"""

from __future__ import annotations

from taskq.core.engine import Engine
from taskq.core.errors import Unavailable


class EngineRef:
    def __init__(self, engine: Engine | None = None) -> None:
        self._engine = engine

    def set(self, engine: Engine | None) -> None:
        self._engine = engine

    def get(self) -> Engine:
        if self._engine is None:
            raise Unavailable(
                "the server is starting: its database is not open yet", reason="NOT_READY", retry_delay_seconds=1.0
            )
        return self._engine
