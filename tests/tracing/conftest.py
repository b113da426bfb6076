"""Fixtures for tracing: a real OTLP/gRPC receiver, servers exporting to it, and the test's
own OpenTelemetry SDK (the application side of the workers) with an in-memory exporter."""

from __future__ import annotations

import threading

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support.engines import engine_settings
from support.otlp_receiver import OtlpReceiver

from harness import ServerHarness

#: Loopback is where the tests' HTTP workers listen (refused by default: the SSRF guard).
HTTP_SETTINGS = {"http_allow_networks": "127.0.0.0/8,::1"}

#: The process's global tracer provider can be set once; every test shares this exporter.
_APPLICATION_SPANS = InMemorySpanExporter()


@pytest.fixture
def receiver():
    receiver = OtlpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def traced_server(request, tmp_path, engine, receiver):
    """A server with tracing on, exporting to `receiver`."""
    harness = ServerHarness(str(tmp_path / "data"), otlp_endpoint=receiver.endpoint, **HTTP_SETTINGS,
                            **engine_settings(request, engine))
    yield harness
    harness.close()


@pytest.fixture
def untraced_server(request, tmp_path, engine):
    """A server with tracing off (the default)."""
    harness = ServerHarness(str(tmp_path / "data"), **HTTP_SETTINGS, **engine_settings(request, engine))
    yield harness
    harness.close()


@pytest.fixture
def application_spans() -> InMemorySpanExporter:
    """The spans the workers' application exports: an SDK installed as the global tracer
    provider, as an application that uses OpenTelemetry does."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_APPLICATION_SPANS))
        trace.set_tracer_provider(provider)
    _APPLICATION_SPANS.clear()
    return _APPLICATION_SPANS


@pytest.fixture
def run_in_thread():
    """Starts a worker's run() in a thread; stops and joins it at the end of the test."""
    started = []

    def start(worker) -> None:
        thread = threading.Thread(target=lambda: worker.run(handle_signals=False), daemon=True)
        thread.start()
        started.append((worker, thread))

    yield start
    for worker, thread in started:
        worker.stop(grace_period=0)
        thread.join(10)
