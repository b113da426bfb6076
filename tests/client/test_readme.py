"""The Python client README's examples run as written, in order, against a real server (only
the address is changed); the worker examples run until SIGTERM and then exit 0."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from client_support import eventually

README = Path(__file__).resolve().parents[2] / "clients" / "python" / "README.md"
README_ADDRESS = "127.0.0.1:50051"

#: Per example, in README order: whether it did its job (given its output and the server),
#: and whether it then keeps running (a worker) until it is sent SIGTERM.
EXAMPLES: list[tuple[Callable[[str, object], bool], bool]] = [
    (lambda out, server: "welcome-ada is already queued" in out and "100 tasks created" in out, False),
    (lambda out, server: "sent welcome (attempt 1)" in out and server.stats("py-emails").tasks_count == 0, True),
    (lambda out, server: "report monthly for acme" in out and server.stats("py-reports").tasks_count == 0, True),
    (lambda out, server: "will be sent to /remind?lang=en" in out and server.stats("py-webhooks").tasks_count == 1, False),
    (lambda out, server: out == "", False),  # defines a WSGI application
    (lambda out, server: "100 thumbnails done" in out, False),
    (lambda out, server: "same request_id again returned" in out and server.stats("py-invoices").tasks_count == 1, False),
]


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


def run_example(code: str, done: Callable[[str], bool], runs_until_stopped: bool, cwd: Path) -> str:
    process = subprocess.Popen([sys.executable, "-u", "-c", code], cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    output: list[str] = []

    def read() -> None:
        for line in process.stdout:  # line by line: the test watches the output while it runs
            output.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if runs_until_stopped:
            eventually(lambda: done("".join(output)) or process.poll() is not None, timeout=20,
                       message="".join(output)[-3000:])
            assert process.poll() is None, "".join(output)
            process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0, "".join(output)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(5)
    text = "".join(output)
    assert done(text), text
    return text


def test_every_python_example_of_the_readme_runs(server, tmp_path):
    blocks = python_blocks()
    assert len(blocks) == len(EXAMPLES), "a README example was added or removed: update EXAMPLES"
    for code, (done, runs_until_stopped) in zip(blocks, EXAMPLES):
        if "Client(" in code or "Worker(" in code:  # those that talk to a server
            assert README_ADDRESS in code
        run_example(code.replace(README_ADDRESS, server.address), lambda out, done=done: done(out, server),
                    runs_until_stopped, tmp_path)
    assert server.stats("py-emails").tasks_count == 0
    assert server.stats("py-reports").tasks_count == 0
