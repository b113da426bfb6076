"""Fixtures of the Cloud Tasks tests: HTTP workers that receive the tasks, and a server whose
App Engine app is one of them, as an emulator user would start taskq for Cloud Tasks."""

from __future__ import annotations

import grpc
import pytest
from cloudtasks.helpers import client_for
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport
from support.engines import engine_settings
from support.http_worker import HttpWorker

from harness import ServerHarness


@pytest.fixture
def worker():
    """The App Engine app (--appengine-url), and the receiver of HTTP tasks."""
    worker = HttpWorker()
    yield worker
    worker.close()


@pytest.fixture
def other_worker():
    """An App Engine service of its own (--appengine-targets worker=...)."""
    worker = HttpWorker()
    yield worker
    worker.close()


@pytest.fixture
def app_server(request, tmp_path, engine, worker, other_worker):
    """A server whose App Engine app is `worker`, with a `worker` service at `other_worker`;
    loopback addresses may be called."""
    harness = ServerHarness(
        str(tmp_path / "data"), appengine_url=worker.url, appengine_targets=f"worker={other_worker.url}",
        http_allow_networks="127.0.0.0/8", **engine_settings(request, engine),
    )
    yield harness
    harness.close()


@pytest.fixture
def v2_client(app_server):
    """Google's v2 client on `app_server`: an insecure channel, no credentials."""
    channel = grpc.insecure_channel(app_server.address)
    yield tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
    channel.close()


@pytest.fixture
def v2beta2_client(server):
    """Google's v2beta2 client on a plain server (no App Engine app)."""
    return client_for(server)
