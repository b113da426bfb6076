"""A push queue's burst (max_burst_size) when its maker gave none, whichever way it was made,
as `taskq queue get` shows it: the rate / 5 rounded up (at least 1) from the CLI, the taskq.v1
API and both Cloud Tasks APIs; App Engine's 5 from a queue.yaml, which keeps App Engine's
default so that an app moved to taskq dispatches as it did there."""

from __future__ import annotations

import json

import grpc
import pytest
from google.cloud import tasks_v2, tasks_v2beta2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport as V2Transport
from google.cloud.tasks_v2beta2.services.cloud_tasks.transports import CloudTasksGrpcTransport as V2beta2Transport

from harness import ServerHarness
from taskq.cli.main import main
from taskq.client import Client

PARENT = "projects/p/locations/l"
QUEUE_YAML = """queue:
- name: yaml-rate
  rate: 50/s
- name: yaml-bucket
  rate: 50/s
  bucket_size: 20
"""


@pytest.fixture
def server_with_queue_yaml(tmp_path):
    path = tmp_path / "queue.yaml"
    path.write_text(QUEUE_YAML)
    # An App Engine URL lets Cloud Tasks v2beta2 make App Engine queues; no task is ever sent there.
    harness = ServerHarness(str(tmp_path / "data"), queues_file=str(path), appengine_url="http://127.0.0.1:9")
    yield harness
    harness.close()


def burst_shown(address: str, queue: str, capsys) -> int:
    assert main(["queue", "get", queue, "--json", "--server", address]) == 0
    return json.loads(capsys.readouterr().out)["rate_limits"]["max_burst_size"]


def test_burst_is_a_fifth_of_the_rate_from_every_api_and_app_engines_5_from_queue_yaml(server_with_queue_yaml, capsys):
    address = server_with_queue_yaml.address
    assert main(["queue", "create", "cli", "--rate", "50/s", "--server", address]) == 0
    with Client(address) as client:
        client.create_queue("api", max_dispatches_per_second=50)
    with grpc.insecure_channel(address) as channel:
        tasks_v2.CloudTasksClient(transport=V2Transport(channel=channel)).create_queue(
            parent=PARENT, queue=tasks_v2.Queue(name=f"{PARENT}/queues/cloud-v2",
                                                rate_limits={"max_dispatches_per_second": 50}))
        tasks_v2beta2.CloudTasksClient(transport=V2beta2Transport(channel=channel)).create_queue(
            parent=PARENT, queue=tasks_v2beta2.Queue(name=f"{PARENT}/queues/cloud-v2beta2", app_engine_http_target={},
                                                     rate_limits={"max_tasks_dispatched_per_second": 50}))
    capsys.readouterr()
    shown = {queue: burst_shown(address, queue, capsys)
             for queue in ("cli", "api", "cloud-v2", "cloud-v2beta2", "yaml-rate", "yaml-bucket")}
    assert shown == {"cli": 10, "api": 10, "cloud-v2": 10, "cloud-v2beta2": 10, "yaml-rate": 5, "yaml-bucket": 20}


def test_a_queue_without_a_rate_gets_a_burst_of_5(server_with_queue_yaml, capsys):
    address = server_with_queue_yaml.address
    assert main(["queue", "create", "unlimited", "--server", address]) == 0
    capsys.readouterr()
    assert burst_shown(address, "unlimited", capsys) == 5
