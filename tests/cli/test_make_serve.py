"""`make serve` needs only Python: it builds the virtualenv and runs `taskq serve`, never npm
(buf is for `make test`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_serve_installs_the_virtualenv_and_nothing_from_npm():
    # What make would run from scratch (--always-make), printed and not run (--dry-run).
    # Run from `make test`, make's variables would make this a sub-make that prints the
    # directories it enters: a make of its own, as a user's, prints only the steps.
    environment = {key: value for key, value in os.environ.items() if key not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    completed = subprocess.run(["make", "--no-print-directory", "--dry-run", "--always-make", "serve"], cwd=ROOT,
                               capture_output=True, text=True, timeout=60, check=True, env=environment)
    steps = completed.stdout
    assert "-m venv .venv" in steps and "pip install" in steps
    assert steps.rstrip().endswith(".venv/bin/taskq serve")
    assert "npm" not in steps and "node_modules" not in steps
