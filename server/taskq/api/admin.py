"""AdminService: operations on the server as a whole (today: online backups)."""

from __future__ import annotations

import os
import time

from taskq.api.engine_ref import EngineRef
from taskq.api.status import guarded
from taskq.core.errors import BackupDestinationExists, InvalidArgument
from taskq.v1 import admin_service_pb2, admin_service_pb2_grpc

#: Longest destination path accepted (Linux's PATH_MAX).
MAX_DESTINATION_BYTES = 4096


def _destination(path: str) -> str:
    """The destination checked before the engine is asked: absolute (the server's working
    directory means nothing to the caller), new, in a directory that exists."""
    if not path:
        raise InvalidArgument.field("destination", "is required", "REQUIRED_FIELD")
    if len(path.encode()) > MAX_DESTINATION_BYTES or "\0" in path:
        raise InvalidArgument.field("destination", f"must be a path of at most {MAX_DESTINATION_BYTES} bytes "
                                    "without NUL characters", "INVALID_PATH")
    if not os.path.isabs(path):
        raise InvalidArgument.field("destination", f"{path[:200]!r} is not an absolute path on the server's machine",
                                    "INVALID_PATH")
    path = os.path.normpath(path)
    if os.path.lexists(path):
        raise BackupDestinationExists(f"{path} already exists: a backup goes into a new directory")
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise InvalidArgument.field("destination", f"its parent directory {parent} does not exist on the server's "
                                    "machine", "INVALID_PATH")
    return path


def _measure(path: str) -> tuple[int, int]:
    """(bytes, files) under `path`."""
    size = files = 0
    for folder, _, names in os.walk(path):
        for name in names:
            size += os.path.getsize(os.path.join(folder, name))
            files += 1
    return size, files


class AdminServicer(admin_service_pb2_grpc.AdminServiceServicer):
    def __init__(self, engine: EngineRef) -> None:
        self._engine = engine

    @guarded
    async def Backup(self, request, context):
        engine = self._engine.get()
        destination = _destination(request.destination)
        started = time.monotonic()
        await engine.db.backup(destination)
        duration_ms = int((time.monotonic() - started) * 1000)
        size, files = _measure(destination)
        return admin_service_pb2.BackupResponse(destination=destination, size_bytes=size, file_count=files,
                                                duration_ms=duration_ms)
