"""A real OTLP/gRPC trace receiver for tracing tests: a gRPC server on a free loopback port
implementing opentelemetry.proto.collector.trace.v1.TraceService, keeping every span sent.

    receiver = OtlpReceiver()             # endpoint: http://127.0.0.1:PORT
    ...                                   # a server configured with otlp_endpoint=receiver.endpoint
    receiver.spans(name="taskq.v1.TaskService/CreateTask")
    receiver.close()
"""

from __future__ import annotations

import threading
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2


class OtlpReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[tuple[dict[str, str], trace_pb2.Span]] = []
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        self.endpoint = f"http://127.0.0.1:{port}"

    def Export(self, request, context):
        with self._lock:
            for resource_spans in request.resource_spans:
                resource = {item.key: item.value.string_value for item in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    self._spans.extend((resource, span) for span in scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self, name: str | None = None) -> list[trace_pb2.Span]:
        """The spans received so far, those named `name` if given, in arrival order."""
        with self._lock:
            return [span for _, span in self._spans if name is None or span.name == name]

    def resources(self) -> list[dict[str, str]]:
        with self._lock:
            return [resource for resource, _ in self._spans]

    def close(self) -> None:
        self._server.stop(None)
