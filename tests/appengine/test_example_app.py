"""The example App Engine app (examples/appengine) end to end, against a real taskq.

Two processes per test: `taskq serve` with the example's queue.yaml, its HTTP port (the API
bridge) and --appengine-url pointing at the app; and the app itself (Flask, Google's SDK,
the ticket middleware) served by werkzeug's threaded WSGI server on a free loopback port,
with API_HOST/API_PORT naming taskq's HTTP port. Everything is driven through the app's own
URLs, as its users would; what the task handlers saw comes back from its GET /received.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from harness import eventually
from processes import ServerProcess
from taskq.client.signature import sign
from taskq.v1 import queue_service_pb2, queue_service_pb2_grpc, task_service_pb2, task_service_pb2_grpc

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "appengine"
SECRET = "example-signing-secret"

# The app's process: the WSGI server binds a free port first and prints it, then learns
# taskq's HTTP port (which taskq only has once it knows the app's URL) on stdin, then imports
# the app, whose wrap_wsgi_app keeps the environment it sees then (API_HOST, API_PORT).
_SERVE_APP = """
import os, sys
from werkzeug.serving import make_server
app = None
server = make_server("127.0.0.1", 0, lambda environ, start_response: app(environ, start_response), threaded=True)
print(server.server_port, flush=True)
os.environ["API_HOST"], os.environ["API_PORT"] = sys.stdin.readline().split()
sys.path.insert(0, os.getcwd())
from main import app
server.serve_forever()
"""


class Example:
    """The running pair: the app at `url`, taskq at `server`."""

    def __init__(self, tmp_path: Path) -> None:
        self._app_log = open(tmp_path / "app.log", "w")
        self.app = subprocess.Popen(
            [sys.executable, "-c", _SERVE_APP], cwd=EXAMPLE, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._app_log, text=True, env={**os.environ, "TASKQ_SIGNING_SECRET": SECRET},
        )
        self.server: ServerProcess | None = None
        try:
            line = self.app.stdout.readline()
            assert line.strip().isdigit(), f"the app did not start: {(tmp_path / 'app.log').read_text()}"
            app_port = int(line)
            self.url = f"http://127.0.0.1:{app_port}"
            server_log = tmp_path / "taskq.log"
            self.server = ServerProcess(
                tmp_path / "data", "--http-listen", "127.0.0.1:0", "--appengine-url", self.url,
                "--queues", str(EXAMPLE / "queue.yaml"), "--http-allow-networks", "127.0.0.0/8",
                env={"TASKQ_HTTP_SIGNING_SECRETS": SECRET}, log_path=server_log,
            )
            http_port = re.search(r"HTTP port (\d+)", server_log.read_text())
            assert http_port is not None, server_log.read_text()
            self.app.stdin.write(f"127.0.0.1 {http_port.group(1)}\n")
            self.app.stdin.flush()
            eventually(self._app_answers, seconds=30)
        except BaseException:
            self.close()
            raise
        self.tasks = task_service_pb2_grpc.TaskServiceStub(self.server.channel)
        self.queues = queue_service_pb2_grpc.QueueServiceStub(self.server.channel)

    def _app_answers(self) -> bool:
        if self.app.poll() is not None:
            raise AssertionError(f"the app exited with {self.app.returncode}")
        try:
            return self.get("/") == "ok\n"
        except OSError:
            return False

    def close(self) -> None:
        self.app.terminate()
        try:
            self.app.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.app.kill()
            self.app.wait()
        self.app.stdin.close()
        self.app.stdout.close()
        self._app_log.close()
        if self.server is not None:
            self.server.stop()
            self.server.process.stdout.close()

    # The app's URLs ---------------------------------------------------------------------------

    def request(self, path: str, form: dict | None = None, headers: dict | None = None) -> tuple[int, str]:
        data = urllib.parse.urlencode(form or {}, doseq=True).encode() if form is not None else None
        request = urllib.request.Request(self.url + path, data=data, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def get(self, path: str) -> str:
        status, body = self.request(path)
        assert status == 200, body
        return body

    def post(self, path: str, status: int = 200, **form) -> str:
        got, body = self.request(path, form)
        assert got == status, body
        return body

    def received(self, kind: str) -> list[dict]:
        return [entry for entry in json.loads(self.get("/received")) if entry["kind"] == kind]

    # taskq, through its gRPC API --------------------------------------------------------------

    def tasks_of(self, queue_id: str) -> list:
        return list(self.tasks.ListTasks(task_service_pb2.ListTasksRequest(parent=f"queues/{queue_id}")).tasks)

    def tasks_count(self, queue_id: str) -> int:
        request = queue_service_pb2.GetQueueStatsRequest(name=f"queues/{queue_id}")
        return self.queues.GetQueueStats(request).stats.tasks_count


@pytest.fixture
def example(tmp_path):
    example = Example(tmp_path)
    yield example
    example.close()


def test_push_tasks_reach_their_handler_with_app_engine_headers_at_the_queues_rate(example):
    recipients = [f"reader{i}@example.com" for i in range(10)]
    names = json.loads(example.post("/newsletter", to=recipients))["names"]
    assert len(set(names)) == 10
    eventually(lambda: len(example.received("email")) == 10)
    emails = example.received("email")
    assert sorted(email["to"] for email in emails) == sorted(recipients)
    assert {email["subject"] for email in emails} == {"News"}
    for email in emails:
        headers = email["headers"]
        assert headers["X-Appengine-Queuename"] == "email"
        assert headers["X-Appengine-Taskname"] in names
        assert (headers["X-Appengine-Taskretrycount"], headers["X-Appengine-Taskexecutioncount"]) == ("0", "0")
        assert abs(float(headers["X-Appengine-Tasketa"]) - email["at"]) < 30
        assert headers["X-Appengine-Api-Ticket"]
    # rate: 5/s, bucket_size: 5: five at once, then one every 0.2 s, so the last comes about a
    # second after the first.
    times = sorted(email["at"] for email in emails)
    assert times[-1] - times[0] >= 0.7


def test_task_urls_refuse_requests_that_taskq_did_not_sign(example):
    form = {"to": "victim@example.com", "subject": "forged"}
    headers = {"X-AppEngine-QueueName": "email", "X-AppEngine-TaskName": "forged"}
    assert example.request("/tasks/send-email", form, headers)[0] == 403
    body = urllib.parse.urlencode(form).encode()
    wrong = sign("not-the-secret", method="POST", target="/tasks/send-email", queue="email", task="forged", body=body)
    assert example.request("/tasks/send-email", form, {**headers, "X-Taskq-Signature": wrong})[0] == 403
    # deferred's handler unpickles what it is sent: it is guarded the same way.
    assert example.request("/_ah/queue/deferred", {"x": "y"}, headers)[0] == 403
    assert example.received("email") == []
    signed = sign(SECRET, method="POST", target="/tasks/send-email", queue="email", task="forged", body=body)
    assert example.request("/tasks/send-email", form, {**headers, "X-Taskq-Signature": signed})[0] == 200
    assert [email["to"] for email in example.received("email")] == ["victim@example.com"]


def test_a_failing_handler_is_retried_with_app_engine_backoff_and_retry_headers(example):
    assert json.loads(example.post("/orders", status=201, order="1001")) == {"name": "charge-1001", "added": True}
    eventually(lambda: len(example.received("charge")) == 2)
    first, second = example.received("charge")
    assert first["order"] == second["order"] == "1001"
    assert first["headers"]["X-Appengine-Taskname"] == second["headers"]["X-Appengine-Taskname"] == "charge-1001"
    assert (first["headers"]["X-Appengine-Taskretrycount"], first["headers"]["X-Appengine-Taskexecutioncount"]) == ("0", "0")
    assert "X-Appengine-Taskpreviousresponse" not in first["headers"]
    retry = second["headers"]
    assert (retry["X-Appengine-Taskretrycount"], retry["X-Appengine-Taskexecutioncount"]) == ("1", "1")
    assert retry["X-Appengine-Taskpreviousresponse"] == "500"
    assert "500" in retry["X-Appengine-Taskretryreason"]
    assert second["at"] - first["at"] >= 0.9  # min_backoff_seconds: 1
    eventually(lambda: example.tasks_count("payments") == 0)  # the retry succeeded
    # The name stays taken after the task ran (tombstoned for 9 days): the order is charged once.
    assert json.loads(example.post("/orders", order="1001")) == {"name": "charge-1001", "added": False}
    assert example.tasks_count("payments") == 0


def test_pull_tasks_are_leased_by_tag_and_deleted(example):
    for kind, user in [("signup", "ann"), ("purchase", "bob"), ("purchase", "cy"), ("signup", "dee"), ("purchase", "eve")]:
        example.post("/events", status=201, kind=kind, user=user)
    assert example.tasks_count("events") == 5
    purchases = json.loads(example.post("/workers/events?tag=purchase"))
    assert purchases["tag"] == "purchase"
    assert sorted(event["user"] for event in purchases["events"]) == ["bob", "cy", "eve"]
    assert purchases["left"] == 2
    oldest = json.loads(example.post("/workers/events"))  # no tag: the oldest task's tag
    assert oldest["tag"] == "signup"
    assert sorted(event["user"] for event in oldest["events"]) == ["ann", "dee"]
    assert oldest["left"] == 0
    assert json.loads(example.post("/workers/events")) == {"tag": None, "events": [], "left": 0}
    assert example.tasks_count("events") == 0


def test_signup_adds_an_email_an_event_and_a_deferred_call_that_runs(example):
    example.post("/signup", status=201, email="new@example.com")
    eventually(lambda: [email["to"] for email in example.received("email")] == ["new@example.com"])
    assert example.tasks_count("events") == 1

    def deferred_answered() -> bool:
        if example.received("deferred"):
            return True
        return any(task.last_attempt.http_status for task in example.tasks_of("default"))

    eventually(deferred_answered)
    refused = [task.last_attempt.http_status for task in example.tasks_of("default")]
    assert refused == [], f"the deferred call's requests were answered {refused}"
    assert [call["email"] for call in example.received("deferred")] == ["new@example.com"]

