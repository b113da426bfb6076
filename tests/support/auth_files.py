"""Authentication helpers for tests: a tokens file written as an operator would, bearer call
metadata, and the ErrorInfo of a refused call."""

from __future__ import annotations

import datetime
from pathlib import Path

import grpc
import yaml
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from taskq.auth.auth_file import new_token, token_hash


class TokensFile:
    """A tokens file: tokens made with `token(name, *roles)`, identities with `identity(...)`;
    every change is written at once (as an operator's edit)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tokens: list[dict] = []
        self.identities: list[dict] = []
        self.write()

    def token(self, name: str, *roles: str, expires: datetime.datetime | None = None) -> str:
        token = new_token()
        entry: dict = {"name": name, "sha256": token_hash(token), "roles": list(roles)}
        if expires is not None:
            entry["expires"] = expires
        self.tokens.append(entry)
        self.write()
        return token

    def identity(self, name: str, *roles: str) -> None:
        self.identities.append({"name": name, "roles": list(roles)})
        self.write()

    def write(self) -> None:
        self.path.write_text(yaml.safe_dump({"tokens": self.tokens, "identities": self.identities}))


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(error)
    assert status is not None, error
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    raise AssertionError(f"no ErrorInfo in {error}")
