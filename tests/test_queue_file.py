"""`taskq serve --queues FILE`: App Engine queue.yaml files work as they are, taskq's own keys
work in the same style, and every mistake is reported with the file's line."""

from __future__ import annotations

import asyncio
import logging
import re
import textwrap

import pytest

from harness import ServerHarness
from taskq.app import StartupError, build_server
from taskq.auth.roles import Grant, Role
from taskq.config import Config
from taskq.core import limits
from taskq.core.limits import DAY, HOUR, MINUTE, SECOND
from taskq.core.model import Queue, QueueType, RetryPolicy
from taskq.queue_file import (
    APP_ENGINE_TOMBSTONE_TTL_US,
    AppEngineRouting,
    QueueFileError,
    load_queue_file,
    load_queue_file_and_acl,
)
from taskq.v1 import queue_pb2, queue_service_pb2

APP_ENGINE_QUEUE_YAML = """\
# queue.yaml of an App Engine application, unchanged
queue:
- name: default
  rate: 5/s
  bucket_size: 10
- name: mail
  rate: 0.5/m
  max_concurrent_requests: 20
  target: mailer
  retry_parameters:
    task_retry_limit: 7
    task_age_limit: 2d
    min_backoff_seconds: 10
    max_backoff_seconds: 200
    max_doublings: 2
- name: reports
  rate: 120/h
  retry_parameters:
    task_age_limit: 30m
- name: nightly
  rate: 24/d
  bucket_size: 1
- name: frozen
  rate: 0
- name: pull-work
  mode: pull
  acl:
  - user_email: ops@example.com
  retry_parameters:
    task_retry_limit: 3
"""


def write(tmp_path, text: str, name: str = "queue.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def load(tmp_path, text: str) -> dict[str, tuple[Queue, bool]]:
    return {queue.queue_id: (queue, paused) for queue, paused in load_queue_file(write(tmp_path, text))}


def default_retry(**fields) -> RetryPolicy:
    policy = RetryPolicy(
        max_attempts=0,
        max_retry_duration_us=0,
        min_backoff_us=limits.DEFAULT_MIN_BACKOFF_US,
        max_backoff_us=limits.DEFAULT_MAX_BACKOFF_US,
        max_doublings=limits.DEFAULT_MAX_DOUBLINGS,
    )
    for name, value in fields.items():
        setattr(policy, name, value)
    return policy


def expected_queue(queue_id: str, queue_type: QueueType = QueueType.PUSH, **fields) -> Queue:
    """A queue with CreateQueue's defaults, except `fields`."""
    values = dict(
        queue_id=queue_id,
        type=queue_type,
        retry=default_retry(),
        dispatch_deadline_us=limits.DEFAULT_DISPATCH_DEADLINE_US,
        task_ttl_us=limits.DEFAULT_TASK_TTL_US,
        tombstone_ttl_us=APP_ENGINE_TOMBSTONE_TTL_US,  # App Engine's 9 days, unless the file says otherwise
    )
    values.update(fields)
    return Queue(**values)


# An App Engine queue.yaml --------------------------------------------------------------------


def test_app_engine_queue_yaml_declares_every_queue_in_file_order(tmp_path):
    declared = load_queue_file(write(tmp_path, APP_ENGINE_QUEUE_YAML))
    assert [queue.queue_id for queue, _ in declared] == ["default", "mail", "reports", "nightly", "frozen", "pull-work"]


def test_app_engine_push_queues_get_their_rates_buckets_and_retry_parameters(tmp_path):
    queues = load(tmp_path, APP_ENGINE_QUEUE_YAML)
    assert queues["default"] == (expected_queue("default", max_dispatches_per_second=5.0, max_burst_size=10), False)
    assert queues["mail"] == (
        expected_queue(
            "mail",
            max_dispatches_per_second=0.5 / 60,
            max_burst_size=5,
            max_concurrent_dispatches=20,
            retry=default_retry(
                max_attempts=8,
                max_retry_duration_us=2 * DAY,
                min_backoff_us=10 * SECOND,
                max_backoff_us=200 * SECOND,
                max_doublings=2,
            ),
        ),
        False,
    )
    assert queues["reports"] == (
        expected_queue(
            "reports", max_dispatches_per_second=120 / 3600, max_burst_size=5,
            retry=default_retry(max_retry_duration_us=30 * MINUTE),
        ),
        False,
    )
    assert queues["nightly"] == (expected_queue("nightly", max_dispatches_per_second=24 / 86400, max_burst_size=1), False)


def test_rate_zero_declares_the_queue_paused_with_no_rate(tmp_path):
    queues = load(tmp_path, APP_ENGINE_QUEUE_YAML)
    assert queues["frozen"] == (expected_queue("frozen", max_burst_size=5), True)


@pytest.mark.parametrize("rate", ["0", "0/s", "0.0/m"])
def test_every_spelling_of_a_zero_rate_pauses(tmp_path, rate):
    queues = load(tmp_path, f"queue:\n- name: q\n  rate: {rate}\n")
    assert queues["q"][1] is True
    assert queues["q"][0].max_dispatches_per_second is None


def test_a_rate_without_bucket_size_gets_app_engines_bucket_of_five(tmp_path):
    # The API's own default would be max(1, rate / 5) = 20; an App Engine file keeps App Engine's 5.
    assert load(tmp_path, "queue:\n- name: q\n  rate: 100/s\n")["q"][0].max_burst_size == 5


def test_task_retry_limit_counts_retries_so_max_attempts_is_one_more(tmp_path):
    queues = load(tmp_path, APP_ENGINE_QUEUE_YAML)
    # Pull queues have no rate, so the file says nothing about their state (None).
    assert queues["pull-work"] == (expected_queue("pull-work", QueueType.PULL, retry=default_retry(max_attempts=4)), None)
    zero = load(tmp_path, "queue:\n- name: once\n  retry_parameters: {task_retry_limit: 0}\n")
    assert zero["once"][0].retry.max_attempts == 1


def test_without_an_application_url_target_is_ignored_with_a_warning_naming_its_line(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="taskq.queue_file"):
        queues = load(tmp_path, APP_ENGINE_QUEUE_YAML)
    assert any(":9: target of queue mail ignored" in record.getMessage() for record in caplog.records)
    assert queues["mail"][0].http_target is None  # streamed push, as before


def test_with_an_application_url_push_queues_deliver_to_it_and_targets_to_their_services(tmp_path):
    routing = AppEngineRouting("http://app.internal:8080", {"mailer": "http://mailer.internal:8081/base"})
    declared = {queue.queue_id: queue for queue, _ in load_queue_file(write(tmp_path, APP_ENGINE_QUEUE_YAML), routing)}
    assert declared["default"].http_target.uri == "http://app.internal:8080"
    assert declared["mail"].http_target.uri == "http://mailer.internal:8081/base"
    assert declared["pull-work"].http_target is None
    versioned = load_queue_file(write(tmp_path, "queue:\n- name: q\n  rate: 1/s\n  target: v2.mailer\n"), routing)
    assert versioned[0][0].http_target.uri == "http://mailer.internal:8081/base"  # a version of the service
    with pytest.raises(QueueFileError, match=r":4: target 'billing' has no URL: add billing=URL to --appengine-targets"):
        load_queue_file(write(tmp_path, "queue:\n- name: q\n  rate: 1/s\n  target: billing\n"), routing)


def test_acl_gives_user_email_the_worker_role_and_writer_email_the_enqueuer_role_on_its_queue(tmp_path):
    text = APP_ENGINE_QUEUE_YAML.replace("  - user_email: ops@example.com\n",
                                         "  - user_email: ops@example.com\n  - writer_email: app@example.com\n")
    _, acl = load_queue_file_and_acl(write(tmp_path, text))
    assert acl == {"ops@example.com": (Grant(Role.WORKER, "pull-work"),),
                   "app@example.com": (Grant(Role.ENQUEUER, "pull-work"),)}


def test_an_acl_uploaded_rather_than_read_at_start_up_is_logged_as_not_applied(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="taskq.queue_file"):
        load(tmp_path, APP_ENGINE_QUEUE_YAML)
    assert any("acl entries give roles only in the queue file the server reads at start-up" in record.getMessage()
               for record in caplog.records)


@pytest.mark.parametrize("acl, reason", [
    ("  acl: ops@example.com\n", r":3: acl must be a list"),
    ("  acl:\n  - owner_email: ops@example.com\n", r":4: an acl entry is one user_email: or writer_email: address"),
    ("  acl:\n  - user_email: ''\n", r":4: user_email must not be empty"),
])
def test_a_malformed_acl_is_refused_with_its_line(tmp_path, acl, reason):
    with pytest.raises(QueueFileError, match=reason):
        load_queue_file(write(tmp_path, "queue:\n- name: q\n" + acl))


def test_total_storage_limit_is_refused_with_its_line_rather_than_ignored(tmp_path):
    with pytest.raises(QueueFileError, match=r":2: total_storage_limit is not enforced by taskq"):
        load_queue_file(write(tmp_path, "# app\ntotal_storage_limit: 120M\nqueue:\n- name: q\n"))


def test_names_are_reserved_for_app_engines_nine_days_unless_the_file_says_otherwise(tmp_path):
    queues = load(tmp_path, "queue:\n- name: a\n- name: b\n  tombstone_ttl: 1h\n")
    assert (queues["a"][0].tombstone_ttl_us, queues["b"][0].tombstone_ttl_us) == (9 * DAY, HOUR)


def test_only_max_backoff_below_the_default_minimum_pulls_the_minimum_down(tmp_path):
    queues = load(tmp_path, "queue:\n- name: q\n  retry_parameters: {max_backoff_seconds: 0.05}\n")
    assert (queues["q"][0].retry.min_backoff_us, queues["q"][0].retry.max_backoff_us) == (50_000, 50_000)


def test_only_min_backoff_above_the_default_maximum_pushes_the_maximum_up(tmp_path):
    queues = load(tmp_path, "queue:\n- name: q\n  retry_parameters: {min_backoff_seconds: 7200}\n")
    assert (queues["q"][0].retry.min_backoff_us, queues["q"][0].retry.max_backoff_us) == (2 * HOUR, 2 * HOUR)


def test_task_age_limit_with_decimals_is_rounded_up_to_the_microsecond(tmp_path):
    queues = load(tmp_path, "queue:\n- name: q\n  retry_parameters: {task_age_limit: 1.5s}\n")
    assert queues["q"][0].retry.max_retry_duration_us == 1_500_000


def test_empty_file_and_empty_queue_list_declare_nothing(tmp_path):
    assert load_queue_file(write(tmp_path, "")) == []
    assert load_queue_file(write(tmp_path, "queue:\nresume_paused_queues: True\napplication: app\n")) == []


# taskq's own keys ----------------------------------------------------------------------------


def test_taskq_keys_set_dead_letter_queue_deadline_ttls_and_paused(tmp_path):
    queues = load(
        tmp_path,
        """\
        queue:
        - name: work
          rate: 10/s
          dead_letter_queue: graveyard
          dispatch_deadline: 2m
          task_ttl: 7d
          tombstone_ttl: 0s
          paused: true
        - name: other
          dead_letter_queue: queues/graveyard
        - name: graveyard
          mode: pull
          paused: false
        """,
    )
    assert queues["work"] == (
        expected_queue(
            "work",
            max_dispatches_per_second=10.0,
            max_burst_size=5,
            dead_letter_queue="graveyard",
            dispatch_deadline_us=2 * MINUTE,
            task_ttl_us=7 * DAY,
            tombstone_ttl_us=0,
        ),
        True,
    )
    assert queues["other"][0].dead_letter_queue == "graveyard"
    assert queues["graveyard"][1] is False


# Mistakes, each on its line ------------------------------------------------------------------

INVALID_FILES = {
    "bad rate syntax": ("queue:\n- name: q\n  rate: 5 per second\n", 3, "rate must be 0 or a number"),
    "rate without unit": ("queue:\n- name: q\n  rate: 5\n", 3, "rate must be"),
    "rate above the API limit": ("queue:\n- name: q\n  rate: 2000000/s\n", 3, "rate: must be greater than 0"),
    "pull queue with rate": ("queue:\n- name: q\n  mode: pull\n  rate: 1/s\n", 4, "rate is for push queues"),
    "pull queue with backoff": (
        "queue:\n- name: q\n  mode: pull\n  retry_parameters:\n    task_retry_limit: 2\n    min_backoff_seconds: 1\n",
        6,
        "min_backoff_seconds is for push queues",
    ),
    "unknown queue key": ("queue:\n- name: q\n  rate: 1/s\n  colour: blue\n", 4, "unknown key 'colour'"),
    "unknown retry key": ("queue:\n- name: q\n  retry_parameters:\n    retries: 3\n", 4, "unknown key 'retries'"),
    "unknown top-level key": ("queue:\n- name: q\nqueues:\n- name: r\n", 3, "unknown top-level key 'queues'"),
    "duplicate name": ("queue:\n- name: a\n- name: b\n- name: a\n", 4, "declared twice (first on line 2)"),
    "duplicate key": ("queue:\n- name: a\n  rate: 1/s\n  rate: 2/s\n", 4, "rate is given twice"),
    "min above max backoff": (
        "queue:\n- name: q\n  retry_parameters:\n    min_backoff_seconds: 20\n    max_backoff_seconds: 10\n",
        4,
        "min_backoff_seconds: must not exceed max_backoff",
    ),
    "bad name": ("queue:\n- name: q\n- name: no_underscores\n", 3, "queue name 'no_underscores'"),
    "name too long": (f"queue:\n- name: {'x' * 101}\n", 2, "1 to 100 characters"),
    "missing name": ("queue:\n- name: q\n- rate: 1/s\n", 3, "needs a name"),
    "bad mode": ("queue:\n- name: q\n  mode: poll\n", 3, "mode must be push or pull"),
    "negative retry limit": ("queue:\n- name: q\n  retry_parameters:\n    task_retry_limit: -1\n", 4, "task_retry_limit"),
    "zero concurrency": ("queue:\n- name: q\n  max_concurrent_requests: 0\n", 3, "max_concurrent_requests"),
    "bucket too big": ("queue:\n- name: q\n  bucket_size: 100001\n", 3, "bucket_size must be a whole number from 0"),
    "task age without unit": ("queue:\n- name: q\n  retry_parameters:\n    task_age_limit: 30\n", 4, "task_age_limit"),
    "zero task age": ("queue:\n- name: q\n  retry_parameters:\n    task_age_limit: 0s\n", 4, "greater than 0"),
    "deadline too short": ("queue:\n- name: q\n  dispatch_deadline: 5s\n", 3, "dispatch_deadline: must be between 15s"),
    "own dead-letter queue": ("queue:\n- name: q\n  dead_letter_queue: q\n", 3, "its own dead_letter_queue"),
    "paused false with rate 0": ("queue:\n- name: q\n  rate: 0\n  paused: false\n", 4, "contradicts rate 0"),
    "queue is not a list": ("queue:\n  name: q\n", 2, "queue must be a list"),
    "bad YAML": ("queue:\n- name: q\n  rate: [1/s\n- name: r\n", 4, "not valid YAML"),
    "tab indentation": ("queue:\n- name: q\n\trate: 1/s\n", 3, "not valid YAML"),
}


@pytest.mark.parametrize("text,line,reason", INVALID_FILES.values(), ids=INVALID_FILES.keys())
def test_invalid_file_is_refused_with_the_offending_line(tmp_path, text, line, reason):
    path = write(tmp_path, text)
    with pytest.raises(QueueFileError) as raised:
        load_queue_file(path)
    message = str(raised.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert reason in message


def test_missing_file_is_refused_naming_it(tmp_path):
    path = str(tmp_path / "nowhere.yaml")
    with pytest.raises(QueueFileError, match="nowhere.yaml: cannot read the queue file"):
        load_queue_file(path)


# A real server -------------------------------------------------------------------------------


@pytest.fixture
def harnesses():
    started: list[ServerHarness] = []
    yield started
    for harness in started:
        harness.close()


def get_queue(harness: ServerHarness, queue_id: str) -> queue_pb2.Queue:
    return harness.queues.GetQueue(queue_service_pb2.GetQueueRequest(name=f"queues/{queue_id}")).queue


def test_server_declares_the_queues_of_an_app_engine_file(tmp_path, harnesses):
    harness = ServerHarness(str(tmp_path / "data"), queues_file=write(tmp_path, APP_ENGINE_QUEUE_YAML))
    harnesses.append(harness)
    mail = get_queue(harness, "mail")
    assert mail.type == queue_pb2.QUEUE_TYPE_PUSH
    assert mail.state == queue_pb2.QUEUE_STATE_RUNNING
    assert mail.rate_limits.max_dispatches_per_second == pytest.approx(0.5 / 60)
    assert mail.rate_limits.max_concurrent_dispatches == 20
    assert mail.retry_config.max_attempts == 8
    assert mail.retry_config.max_retry_duration.seconds == 2 * 86400
    assert mail.retry_config.min_backoff.seconds == 10
    assert mail.retry_config.max_backoff.seconds == 200
    assert mail.retry_config.max_doublings == 2
    assert get_queue(harness, "default").rate_limits.max_burst_size == 10
    assert get_queue(harness, "frozen").state == queue_pb2.QUEUE_STATE_PAUSED
    pull = get_queue(harness, "pull-work")
    assert pull.type == queue_pb2.QUEUE_TYPE_PULL
    assert pull.retry_config.max_attempts == 4


def test_restart_with_an_edited_file_updates_the_queues_and_keeps_their_tasks(tmp_path, harnesses):
    path = write(tmp_path, "queue:\n- name: work\n  mode: pull\n- name: mail\n  rate: 0\n")
    harness = ServerHarness(str(tmp_path / "data"), queues_file=path)
    harnesses.append(harness)
    task = harness.create_task("work", b"kept")
    assert get_queue(harness, "mail").state == queue_pb2.QUEUE_STATE_PAUSED

    write(tmp_path, "queue:\n- name: work\n  mode: pull\n  retry_parameters: {task_retry_limit: 2}\n"
                    "- name: mail\n  rate: 3/s\n  bucket_size: 7\n")
    harness.restart()

    assert get_queue(harness, "work").retry_config.max_attempts == 3
    mail = get_queue(harness, "mail")
    assert mail.state == queue_pb2.QUEUE_STATE_RUNNING
    assert mail.rate_limits.max_dispatches_per_second == 3.0
    assert mail.rate_limits.max_burst_size == 7
    assert harness.get_task(task.name).payload == b"kept"


def test_dead_letter_queue_may_be_declared_later_in_the_same_file(tmp_path, harnesses):
    path = write(tmp_path, "queue:\n- name: work\n  rate: 1/s\n  dead_letter_queue: graveyard\n"
                           "- name: graveyard\n  mode: pull\n")
    harness = ServerHarness(str(tmp_path / "data"), queues_file=path)
    harnesses.append(harness)
    assert get_queue(harness, "work").dead_letter_queue == "queues/graveyard"
    assert get_queue(harness, "graveyard").type == queue_pb2.QUEUE_TYPE_PULL


def test_server_with_an_invalid_file_fails_to_start_naming_the_line(tmp_path):
    path = write(tmp_path, "queue:\n- name: work\n  mode: pull\n  bucket_size: 5\n")
    config = Config(listen="127.0.0.1:0", data_dir=str(tmp_path / "data"), queues_file=path)

    async def start() -> None:
        server = build_server(config)
        try:
            await server.start()
        finally:
            await server.stop(grace=0)

    with pytest.raises(StartupError, match=rf"^{re.escape(path)}:4: bucket_size is for push queues"):
        asyncio.run(start())


def test_a_restart_with_a_file_silent_about_state_keeps_a_queue_paused_through_the_api(tmp_path, harnesses):
    path = write(tmp_path, "queue:\n- name: work\n  mode: pull\n")
    harness = ServerHarness(str(tmp_path / "data"), queues_file=path)
    harnesses.append(harness)
    harness.queues.PauseQueue(queue_service_pb2.PauseQueueRequest(name="queues/work"))
    harness.restart()
    assert get_queue(harness, "work").state == queue_pb2.QUEUE_STATE_PAUSED


def test_a_file_naming_a_missing_dead_letter_queue_changes_nothing(tmp_path):
    path = write(tmp_path, "queue:\n- name: first\n  rate: 1/s\n- name: work\n  rate: 1/s\n  dead_letter_queue: nowhere\n")
    config = Config(listen="127.0.0.1:0", data_dir=str(tmp_path / "data"), queues_file=path)

    async def start() -> None:
        server = build_server(config)
        try:
            await server.start()
        finally:
            await server.stop(grace=0)

    with pytest.raises(StartupError, match="queues/nowhere is neither in the file nor an existing queue"):
        asyncio.run(start())
    harness = ServerHarness(str(tmp_path / "data"))
    try:
        assert list(harness.queues.ListQueues(queue_service_pb2.ListQueuesRequest()).queues) == []
    finally:
        harness.close()
