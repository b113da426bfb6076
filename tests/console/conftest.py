"""Fixtures for the web console: a real server with its HTTP port and a tokens file, and a
headless Chromium page (tests/support/browser.py) to look at it with."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.auth_files import TokensFile, bearer
from support.browser import chromium_path

from harness import FakeClock, ServerHarness, seconds_to_duration
from taskq.console import HISTORY
from taskq.v1 import queue_pb2, queue_service_pb2, task_pb2, task_service_pb2


class ConsoleServer:
    """A server with authentication on, its console's address, and API calls made as admin.
    Its tokens are made before it starts (the server reads the file again only every few
    seconds): ops (admin), watcher (viewer) and team-a (viewer on team-a-*)."""

    def __init__(self, harness: ServerHarness, tokens: dict[str, str]) -> None:
        self.harness = harness
        self.admin_token = tokens["ops"]
        self.viewer_token = tokens["watcher"]
        self.team_a_token = tokens["team-a"]
        self.url = f"http://127.0.0.1:{harness.server.http_port.port}/console"

    def create_queue(self, queue_id: str, queue_type: int = queue_pb2.QUEUE_TYPE_PULL, **fields) -> queue_pb2.Queue:
        queue = queue_pb2.Queue(name=f"queues/{queue_id}", type=queue_type, **fields)
        request = queue_service_pb2.CreateQueueRequest(queue=queue)
        return self.harness.queues.CreateQueue(request, metadata=bearer(self.admin_token)).queue

    def get_queue(self, queue_id: str) -> queue_pb2.Queue:
        request = queue_service_pb2.GetQueueRequest(name=f"queues/{queue_id}")
        return self.harness.queues.GetQueue(request, metadata=bearer(self.admin_token)).queue

    def lease(self, queue_id: str, seconds: float = 60, **fields) -> list[task_pb2.Task]:
        request = task_service_pb2.LeaseTasksRequest(parent=f"queues/{queue_id}", lease_duration=seconds_to_duration(seconds),
                                                     max_tasks=10, **fields)
        return list(self.harness.tasks.LeaseTasks(request, metadata=bearer(self.admin_token)).tasks)

    def ack(self, task: task_pb2.Task) -> None:
        request = task_service_pb2.DeleteTaskRequest(name=task.name, lease_token=task.lease_token)
        self.harness.tasks.DeleteTask(request, metadata=bearer(self.admin_token))

    def sample_history(self) -> None:
        """One sample of the console's charts (a FakeClock server does not sample by itself)."""
        self.harness.run(self.harness.server.http_port.app[HISTORY].run_once())

    def stats(self, queue_id: str) -> queue_pb2.QueueStats:
        request = queue_service_pb2.GetQueueStatsRequest(name=f"queues/{queue_id}")
        return self.harness.queues.GetQueueStats(request, metadata=bearer(self.admin_token)).stats

    def fail_leased(self, queue_id: str) -> None:
        """Leases every task of the queue for a second and lets the leases run out: with
        max_attempts 1, each fails (or goes to the dead-letter queue) with "lease expired"."""
        self.lease(queue_id, seconds=1)
        self.harness.clock.advance(2)
        self.harness.reap()

    def create_task(self, queue_id: str, payload: bytes = b"", task_id: str = "", **fields) -> task_pb2.Task:
        if task_id:
            fields["name"] = f"queues/{queue_id}/tasks/{task_id}"
        request = task_service_pb2.CreateTaskRequest(parent=f"queues/{queue_id}", task=task_pb2.Task(payload=payload, **fields))
        return self.harness.tasks.CreateTask(request, metadata=bearer(self.admin_token)).task


@pytest.fixture
def console(tmp_path):
    tokens_file = TokensFile(tmp_path / "tokens.yaml")
    tokens = {
        "ops": tokens_file.token("ops", "admin"),
        "watcher": tokens_file.token("watcher", "viewer"),
        "team-a": tokens_file.token("team-a", "viewer=team-a-*"),
    }
    # A FakeClock: leases run out when the test says so (fail_all); the console's live numbers
    # come from the counters and need no background loop.
    harness = ServerHarness(str(tmp_path / "data"), clock=FakeClock(), http_listen="127.0.0.1:0",
                            auth_tokens_file=str(tokens_file.path))
    yield ConsoleServer(harness, tokens)
    harness.close()


@pytest.fixture(scope="module")
def browser():
    """Chromium for one test module. Not for the whole session: Playwright's sync API runs an
    event loop in the main thread while it is started, and later tests' asyncio.run() would
    find it."""
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def log_in(page, url: str, token: str) -> None:
    """Opens the console and logs in with `token` through the login form."""
    page.goto(url + "/queues")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(url + "/queues")


#: Where screenshot() saves, when TASKQ_SCREENSHOTS is set (make console-screenshots): the
#: README shows them.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"


def screenshot(page, name: str) -> None:
    """Saves the page as docs/console/<name>.png when TASKQ_SCREENSHOTS is set (not on every
    run, so that running the tests leaves the checkout as it was)."""
    if os.environ.get("TASKQ_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
