"""Registers the servicers with the gRPC server, decoding requests without ever raising.

grpcio answers a request whose bytes do not decode (garbage, a truncated field, invalid
UTF-8 in a string) with UNKNOWN before any servicer runs. Here the decoder returns a
`MalformedRequest` instead, and the servicers answer it with INVALID_ARGUMENT, reason
MALFORMED_REQUEST, like any other bad input.

With authentication on, a `Gate` (taskq/auth/gate.py) wraps every method handler registered
here: the one place where each call's caller and decoded request are checked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import grpc
from google.protobuf import descriptor, message, message_factory


class Gate(Protocol):
    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """`handler` behind the checks of `method` (/package.Service/Method)."""


class MalformedRequest:
    """A request that could not be decoded; `reason` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _decoder(message_class: type[message.Message]) -> Callable[[bytes], message.Message | MalformedRequest]:
    def decode(data: bytes) -> message.Message | MalformedRequest:
        try:
            return message_class.FromString(data)
        except Exception as error:  # DecodeError, and whatever else a hostile payload triggers
            return MalformedRequest(str(error) or type(error).__name__)

    return decode


def add_service(server: grpc.aio.Server, servicer: object, service: descriptor.ServiceDescriptor,
                gate: Gate | None = None) -> None:
    """Registers every method of `service` implemented by `servicer`."""
    handlers = {}
    for method in service.methods:
        behaviour = getattr(servicer, method.name)
        decode = _decoder(message_factory.GetMessageClass(method.input_type))
        encode = message_factory.GetMessageClass(method.output_type).SerializeToString
        if method.client_streaming and method.server_streaming:
            handler = grpc.stream_stream_rpc_method_handler(behaviour, request_deserializer=decode,
                                                            response_serializer=encode)
        elif method.client_streaming or method.server_streaming:
            raise ValueError(f"{method.full_name}: only unary and bidirectional methods are supported")
        else:
            handler = grpc.unary_unary_rpc_method_handler(behaviour, request_deserializer=decode,
                                                          response_serializer=encode)
        handlers[method.name] = handler
    _register(server, service.full_name, handlers, gate)


def add_unary_methods(
    server: grpc.aio.Server, service_name: str, servicer: object,
    methods: list[tuple[str, type[message.Message], type[message.Message]]], gate: Gate | None = None,
) -> None:
    """Registers unary methods given as (name, request class, response class): for services
    whose packages ship message classes but no service descriptor (Google's Cloud Tasks)."""
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, name), request_deserializer=_decoder(request), response_serializer=response.SerializeToString
        )
        for name, request, response in methods
    }
    _register(server, service_name, handlers, gate)


def _register(server: grpc.aio.Server, service_name: str, handlers: dict, gate: Gate | None) -> None:
    if gate is not None:
        handlers = {name: gate.wrap(f"/{service_name}/{name}", handler) for name, handler in handlers.items()}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service_name, handlers),))
    server.add_registered_method_handlers(service_name, handlers)
