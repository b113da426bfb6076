"""OpenTelemetry tracing of the server, off unless `otlp_endpoint` is set (docs/tracing.md).

provider.py builds the server's own TracerProvider and OTLP/gRPC exporter; rpc.py is the
grpc.aio interceptor that makes a server span of every call. The trace context a task keeps
for its workers is read in api/trace_context.py, which works with tracing on or off.
"""
