"""Files the server reads at start-up and again whenever they are replaced: the TLS
certificates (taskq/tls.py), the auth file and a JWKS file (taskq/auth).

A change is noticed by the files' `stat` signature, so looking costs one `stat` per file while
nothing changed. Files that cannot be used at start-up raise the loader's error, which stops
the server; files that cannot be used later leave the previous contents in service and are
logged once for each change of the files, until a change makes them usable again.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from taskq.core.clock import Clock

log = logging.getLogger(__name__)

T = TypeVar("T")


class WatchedFiles(Generic[T]):
    """What `load()` made of some files, made again by `check()` when they changed.

    `check()` may be called from any thread (gRPC calls its certificate fetcher on threads of
    its own)."""

    def __init__(self, paths: Sequence[str], load: Callable[[], T], error: type[Exception], label: str, what: str,
                 logger: logging.Logger = log, clock: Clock | None = None, interval_s: float = 0.0) -> None:
        self._paths = list(paths)
        self._load = load
        #: The loader's exception for unusable files; other exceptions are bugs and propagate.
        self._error = error
        #: Name the files and their contents in log lines ("TLS: ...; the previous certificates
        #: stay in use"), logged by the owner's logger.
        self._label = label
        self._what = what
        self._log = logger
        self._lock = threading.Lock()
        self._signature = signature(self._paths)
        #: The files' signature when a reload last failed, so the error is logged once.
        self._failed_signature: tuple[object, ...] | None = None
        #: Raises `error`: at start-up, unusable files stop the server.
        self.current = load()
        #: `get()` looks at the files at most every `interval_s` of `clock` (None: every time).
        self._clock = clock
        self._interval_us = int(interval_s * 1_000_000)
        self._next_look_us = clock.now_us() + self._interval_us if clock is not None else 0

    def get(self) -> T:
        """The contents, read again first if the files changed (checked on use: a call that
        finds the interval passed pays for the `stat`)."""
        if self._clock is not None:
            now_us = self._clock.now_us()
            if now_us < self._next_look_us:
                return self.current
            self._next_look_us = now_us + self._interval_us
        self.check()
        return self.current

    def same(self, old: T, new: T) -> bool:
        """Whether a reading gave nothing new (the files were touched or copied again)."""
        return old == new

    def check(self) -> bool:
        """Loads the files again if they changed since the last look; True when that gave new
        contents (now `current`). Unusable files keep the old ones (logged once)."""
        with self._lock:
            now = signature(self._paths)
            if now == self._signature:
                return False
            try:
                loaded = self._load()
            except self._error as error:
                if now != self._failed_signature:
                    self._log.error("%s: %s; the previous %s stay in use", self._label, error, self._what)
                    self._failed_signature = now
                return False
            # The signature of before the reading: if the files changed again meanwhile, the
            # next check sees the difference and reads them once more.
            self._signature = now
            self._failed_signature = None
            if self.same(self.current, loaded):
                return False
            self.current = loaded
            self._log.info("%s: loaded new %s from %s", self._label, self._what, self._paths[0])
            return True


def signature(paths: Sequence[str]) -> tuple[object, ...]:
    """What changes when a file is written or replaced (os.stat follows the kubelet's symlinks
    to the new directory's files): device, inode, size, modification and change times."""
    parts: list[object] = []
    for path in paths:
        try:
            status = os.stat(path)
        except OSError as error:
            parts.append(error.errno)
        else:
            parts.append((status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns))
    return tuple(parts)


__all__ = ["WatchedFiles", "signature"]
