"""Generated task ids and lease tokens: unique, unpredictable enough, and cheap.

They come from a generator seeded once from the OS. Calling os.urandom for each (as the
`secrets` module does) costs a system call that releases the GIL, and on a busy server the
thread switches that follows cost more than everything else a task create does. These values
need to be unique and not guessable by accident, not to resist an attacker: anyone who can
call the API can already delete any task.
"""

from __future__ import annotations

import base64
import os
import random

_random = random.Random(os.urandom(32))


def reseed() -> None:
    """Gives a forked child its own sequence (registered with os.register_at_fork below)."""
    _random.seed(os.urandom(32))


os.register_at_fork(after_in_child=reseed)


def new_task_id() -> str:
    """32 hex digits: 128 random bits."""
    return f"{_random.getrandbits(128):032x}"


def new_lease_token() -> str:
    """16 URL-safe characters: 96 random bits."""
    return base64.urlsafe_b64encode(_random.getrandbits(96).to_bytes(12, "big")).decode()
