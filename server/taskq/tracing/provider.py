"""The server's TracerProvider: spans batched and exported over OTLP/gRPC.

The provider is the server's own and is never made the process's global one: an
application that embeds the server (the tests do) keeps its own global provider, and two
servers in one process export separately.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Tracer

log = logging.getLogger(__name__)

#: What the spans' resource is called unless OTEL_SERVICE_NAME (or OTEL_RESOURCE_ATTRIBUTES)
#: names it otherwise.
DEFAULT_SERVICE_NAME = "taskq"


def check_endpoint(endpoint: str) -> None:
    """Raises ValueError unless `endpoint` is an http:// or https:// URL with a host: the
    scheme decides plain text or TLS, which the exporter would otherwise guess."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"otlp_endpoint must be an http:// or https:// URL of an OTLP/gRPC receiver, such as "
                         f"http://localhost:4317, not {endpoint!r}")
    try:
        _ = parts.port  # reading it checks it
    except ValueError:
        raise ValueError(f"otlp_endpoint has an invalid port: {endpoint!r}") from None


class Tracing:
    """Spans of this server, exported to `endpoint` in batches from a background thread."""

    def __init__(self, endpoint: str) -> None:
        # Resource.create also reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, the
        # standard way to name an instance; ours is only the default.
        resource = Resource.create({SERVICE_NAME: DEFAULT_SERVICE_NAME})
        self.provider = TracerProvider(resource=resource)
        exporter = OTLPSpanExporter(endpoint=endpoint, insecure=urlsplit(endpoint).scheme == "http")
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer: Tracer = self.provider.get_tracer("taskq.server")
        log.info("tracing: spans exported over OTLP/gRPC to %s", endpoint)

    async def flush(self) -> None:
        """Exports the spans ended so far (the exporter blocks: it runs in a thread)."""
        await asyncio.to_thread(self.provider.force_flush)

    async def stop(self) -> None:
        """Exports what is left and stops the exporter's thread."""
        await asyncio.to_thread(self.provider.shutdown)
