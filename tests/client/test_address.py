"""The address rules of every Python client and the CLI (taskq.client.address): a URL's scheme
says TLS and brings its default port, a bare host means taskq's port 50051 (never 443), and a
malformed address is refused at once with what is wrong."""

from __future__ import annotations

import pytest

from taskq.client import Client, InvalidAddress, Worker
from taskq.client.address import parse_address


@pytest.mark.parametrize("address, target, tls", [
    ("127.0.0.1:50051", "127.0.0.1:50051", None),
    ("taskq.example.com:8443", "taskq.example.com:8443", None),
    ("taskq", "taskq:50051", None),
    ("localhost", "localhost:50051", None),
    ("[::1]:7000", "[::1]:7000", None),
    ("[::1]", "[::1]:50051", None),
    ("https://taskq.example.com", "taskq.example.com:443", True),
    ("https://taskq.example.com/", "taskq.example.com:443", True),
    ("HTTPS://taskq.example.com:8443", "taskq.example.com:8443", True),
    ("https://[2001:db8::1]:9000", "[2001:db8::1]:9000", True),
    ("http://127.0.0.1:50051", "127.0.0.1:50051", False),
    ("http://taskq.example.com", "taskq.example.com:80", False),
    ("dns:///taskq.example.com:50051", "dns:///taskq.example.com:50051", None),
    ("dns:///taskq.example.com", "dns:///taskq.example.com:50051", None),
    ("dns://8.8.8.8/taskq.example.com:7000", "dns://8.8.8.8/taskq.example.com:7000", None),
    ("unix:/run/taskq.sock", "unix:/run/taskq.sock", None),
    ("unix:///run/taskq.sock", "unix:///run/taskq.sock", None),
    ("  localhost:50051\n", "localhost:50051", None),
    ("ipv4:127.0.0.1:7001,127.0.0.1:7002", "ipv4:127.0.0.1:7001,127.0.0.1:7002", None),
    ("ipv4:10.0.0.1", "ipv4:10.0.0.1:50051", None),
    ("ipv6:[::1]:7001,[::2]", "ipv6:[::1]:7001,[::2]:50051", None),
])
def test_accepted_addresses_connect_where_their_form_says(address, target, tls):
    parsed = parse_address(address)
    assert (parsed.target, parsed.tls) == (target, tls)


@pytest.mark.parametrize("address, reason", [
    ("", "the host is missing"),
    ("localhost:", "the port must be a number from 1 to 65535"),
    ("localhost:http", "the port must be a number from 1 to 65535, not 'http'"),
    ("localhost:70000", "the port must be a number from 1 to 65535"),
    ("localhost:0", "the port must be a number from 1 to 65535"),
    ("::1", "an IPv6 address goes in brackets"),
    ("[::1", "closed with ]"),
    ("[not-ipv6]:1", "is not an IPv6 address"),
    ("[::1]x", "only :port may follow an IPv6 address"),
    ("local host:1", "is not a host name or IP address"),
    ("localhost:50051/path", "the port must be a number"),
    ("https://taskq.example.com/v1", "no path, query or fragment"),
    ("https://taskq.example.com?x=1", "no path, query or fragment"),
    ("https://user:pw@taskq.example.com", "no user name or password"),
    ("https://", "the host is missing"),
    ("https://taskq.example.com:99999", "Port out of range"),
    ("https://taskq.example.com:0", "port 0 cannot be connected to"),
    ("grpc://taskq.example.com:50051", "grpc:// is not supported"),
    ("dns://taskq.example.com", "dns:///host:port"),
    ("unix:", "needs the path of a socket"),
    ("ipv4:localhost:7001", "ipv4: lists ipv4 addresses, not 'localhost:7001'"),
    ("ipv4:127.0.0.1:7001,", "the host is missing"),
    ("ipv6:127.0.0.1", "ipv6: lists ipv6 addresses"),
])
def test_malformed_addresses_are_refused_with_the_reason(address, reason):
    with pytest.raises(InvalidAddress) as error:
        parse_address(address)
    assert reason in str(error.value)
    assert "https://host[:port]" in str(error.value)  # the accepted forms


def test_a_client_or_worker_with_a_malformed_address_fails_at_once_not_in_the_resolver():
    with pytest.raises(InvalidAddress):
        Client("taskq.example.com:fifty")
    with pytest.raises(InvalidAddress):
        Worker("grpc://taskq.example.com", "push", lambda task: None)


def test_a_bare_host_reaches_the_server_on_port_50051_in_plain_text(monkeypatch):
    seen = {}

    def insecure_channel(target, options=None):
        seen["target"] = target
        raise RuntimeError("stop here")

    monkeypatch.setattr("grpc.insecure_channel", insecure_channel)
    with pytest.raises(RuntimeError, match="stop here"):
        Client("taskq.internal")
    assert seen["target"] == "taskq.internal:50051"
