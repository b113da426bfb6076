"""Chromium for the console's browser tests: Debian's package (tools/install-chromium.sh),
driven headless by Playwright through its executable path, since Playwright's own browser
downloads are not available here. Without it the tests are skipped, unless
TASKQ_REQUIRE_BROWSER is set (make test sets it: there, a missing browser fails)."""

from __future__ import annotations

import os
import shutil

import pytest


def chromium_path() -> str:
    """The system Chromium's path; skips (or fails under TASKQ_REQUIRE_BROWSER) without one."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    reason = "the console's browser tests need Chromium: run tools/install-chromium.sh (Debian's chromium package)"
    if os.environ.get("TASKQ_REQUIRE_BROWSER"):
        pytest.fail(reason)
    pytest.skip(reason)
