"""X-Taskq-Signature (v1) verification: known answers computed here from the formula with hmac,
every part of the request covered, stale times, secret rotation, malformed headers, the WSGI
helper (target as sent, body put back) behind a real HTTP server, and requests a real taskq
server pushes."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import io
import threading
import wsgiref.simple_server
import wsgiref.util

import pytest

import taskq.client
from client_support import eventually
from harness import ServerHarness
from taskq.client import Client
from taskq.client.signature import parse_header, sign, verify_request, verify_signature, verify_wsgi_request, wsgi_target
from taskq.v1 import task_pb2

SECRET = "s3cret-ünïcode"
NOW = 1_767_225_600
REQUEST = {"method": "post", "target": "/tasks/run?x=1&y=a%2Fb", "queue": "emails", "task": "welcome-ada",
           "body": b'{"to": "ada@example.com"}'}


def v1(secret: str, message: str) -> str:
    """The formula itself: lowercase hex HMAC-SHA256, key = the secret's UTF-8, of the message's UTF-8."""
    return hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()


def expected_v1(secret: str = SECRET, t: int = NOW, **changes) -> str:
    request = {**REQUEST, **changes}
    body_hash = hashlib.sha256(request["body"]).hexdigest()
    message = f"{t}\n{request['method'].upper()}\n{request['target']}\n{request['queue']}\n{request['task']}\n{body_hash}"
    return v1(secret, message)


def verify(header: str | None, secret=SECRET, now: float = NOW, **changes) -> bool:
    return verify_signature(header, secret, **{**REQUEST, **changes}, now=now)


def test_a_signature_computed_from_the_formula_verifies():
    header = f"t={NOW},v1={expected_v1()}"
    assert verify(header)
    # The same request, spelt out, so that a change of the formula cannot go unnoticed.
    body_hash = hashlib.sha256(b'{"to": "ada@example.com"}').hexdigest()
    message = f"1767225600\nPOST\n/tasks/run?x=1&y=a%2Fb\nemails\nwelcome-ada\n{body_hash}"
    assert verify(f"t=1767225600,v1={v1(SECRET, message)}")


def test_no_body_is_hashed_as_empty_bytes():
    empty_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    message = f"{NOW}\nGET\n/ping\nq\nt\n{empty_hash}"
    header = f"t={NOW},v1={v1(SECRET, message)}"
    assert verify_signature(header, SECRET, method="GET", target="/ping", queue="q", task="t", body=b"", now=NOW)
    assert verify_signature(header, SECRET, method="GET", target="/ping", queue="q", task="t", body=None, now=NOW)


def test_sign_produces_what_the_formula_gives():
    assert sign(SECRET, **REQUEST, timestamp=NOW) == f"t={NOW},v1={expected_v1()}"
    assert sign([SECRET, "other"], **REQUEST, timestamp=NOW) == (
        f"t={NOW},v1={expected_v1()},v1={expected_v1(secret='other')}")


def test_the_wrong_secret_fails():
    header = f"t={NOW},v1={expected_v1()}"
    assert not verify(header, secret="not the secret")
    assert not verify(header, secret=SECRET.upper())


@pytest.mark.parametrize("change", [
    {"body": b'{"to": "eve@example.com"}'},
    {"body": b""},
    {"target": "/tasks/run?x=2&y=a%2Fb"},
    {"target": "/tasks/run?x=1&y=a/b"},  # percent-encoding is part of the target as sent
    {"target": "/tasks/run"},
    {"target": "/tasks/other?x=1&y=a%2Fb"},
    {"method": "put"},
    {"queue": "other"},
    {"task": "welcome-bob"},
])
def test_any_tampered_part_of_the_request_fails(change):
    assert not verify(f"t={NOW},v1={expected_v1()}", **change)


def test_the_method_is_compared_in_upper_case():
    header = f"t={NOW},v1={expected_v1()}"
    assert verify(header, method="POST") and verify(header, method="Post")


def test_a_time_outside_the_tolerance_fails():
    header = f"t={NOW},v1={expected_v1()}"
    assert verify(header, now=NOW + 300) and verify(header, now=NOW - 300)
    assert not verify(header, now=NOW + 301)
    assert not verify(header, now=NOW - 301)  # from the future
    assert verify_signature(header, SECRET, **REQUEST, now=NOW + 3600, tolerance=3600)
    assert not verify_signature(header, SECRET, **REQUEST, now=NOW + 3601, tolerance=3600)


def test_the_time_is_signed():
    # A valid v1 replayed with a fresher t does not verify.
    assert not verify(f"t={NOW + 60},v1={expected_v1()}", now=NOW + 60)


def test_the_default_clock_is_this_machines():
    assert verify_signature(sign(SECRET, **REQUEST), SECRET, **REQUEST)
    assert not verify_signature(f"t={NOW},v1={expected_v1()}", SECRET, **REQUEST)  # NOW is long past


def test_rotation_any_v1_may_match_and_any_secret_may_be_the_verifiers():
    old, new = "old-secret", "new-secret"
    both = f"t={NOW},v1={expected_v1(secret=old)},v1={expected_v1(secret=new)}"
    assert verify(both, secret=new)  # the second v1 matches
    assert verify(both, secret=old)
    assert verify(both, secret=[new, "unrelated"])
    assert verify(f"t={NOW},v1={expected_v1(secret=old)}", secret=[new, old])  # the verifier's second secret
    assert not verify(both, secret=["unrelated", "another"])
    assert not verify(f"t={NOW},v1={'0' * 64},v1={expected_v1(secret='unrelated')}", secret=[old, new])


def test_spaces_around_entries_are_tolerated():
    assert verify(f" t={NOW} , v1={expected_v1()} ")
    assert verify(f"t={NOW}, v1={'0' * 64}, v1={expected_v1()}")
    assert verify(f"t={NOW},v1={expected_v1()},")  # empty entries too
    assert verify(f",t={NOW},,v1={expected_v1()}")


def test_other_versions_are_ignored():
    assert verify(f"t={NOW},v2=whatever,v1={expected_v1()}")
    assert not verify(f"t={NOW},v2={expected_v1()}")


@pytest.mark.parametrize("header", [
    None,
    "",
    " ",
    "garbage",
    f"v1={expected_v1()}",  # no t
    f"t=,v1={expected_v1()}",
    f"t={NOW}",  # no v1
    f"t={NOW},v1=",
    f"t=abc,v1={expected_v1()}",
    f"t={NOW}.5,v1={expected_v1()}",
    f"t=-{NOW},v1={expected_v1()}",
    f"t={NOW},t={NOW},v1={expected_v1()}",  # two times
    f"t={NOW};v1={expected_v1()}",
    f"t={NOW},v1={expected_v1().upper()}",  # lowercase hex only
    f"t={NOW},v1={expected_v1()[:-1]}",
    f"t={NOW},v1={expected_v1()}0",
    f"t={NOW},{expected_v1()}",  # an entry without a key
    f"t = {NOW},v1 = {expected_v1()}",  # spaces inside an entry: keys "t " and "v1 "
    ",",
    f"t=１７６７２２５６００,v1={expected_v1()}",  # digits, but not ASCII ones
    f"t={NOW},v1={expected_v1()[:-2]}é1",
])
def test_a_missing_or_malformed_header_fails(header):
    assert not verify(header)


def test_parse_header_reads_the_time_and_the_signatures():
    assert parse_header(f"t={NOW},v1={'a' * 64},v1={'b' * 64}") == (NOW, ["a" * 64, "b" * 64])
    assert parse_header(f"v1={'a' * 64}") is None


@pytest.mark.parametrize("secret", ["", [], ["ok", ""]])
def test_an_empty_secret_is_a_configuration_error(secret):
    with pytest.raises(ValueError, match="secret"):
        verify(f"t={NOW},v1={expected_v1()}", secret=secret)


def test_verify_request_reads_the_headers_in_any_case():
    headers = {"x-taskq-signature": f"t={NOW},v1={expected_v1()}", "X-AppEngine-QueueName": "emails",
               "X-APPENGINE-TASKNAME": "welcome-ada", "Content-Type": "application/json"}
    fields = {"method": REQUEST["method"], "target": REQUEST["target"], "body": REQUEST["body"], "now": NOW}
    assert verify_request(headers, SECRET, **fields)
    assert not verify_request({**headers, "X-AppEngine-QueueName": "other"}, SECRET, **fields)
    assert not verify_request({key: value for key, value in headers.items() if "Task" not in key and "TASK" not in key},
                              SECRET, **fields)


def test_the_verifiers_are_exported_from_the_client_package():
    assert taskq.client.verify_signature is verify_signature
    assert taskq.client.verify_wsgi_request is verify_wsgi_request
    assert taskq.client.verify_request is verify_request


# WSGI ----------------------------------------------------------------------------------------


def wsgi_environ(*, path: str = "/tasks/run", query: str = "x=1&y=a%2Fb", body: bytes = REQUEST["body"],
                 signature: str | None = None, **extra) -> dict:
    environ: dict = {
        "REQUEST_METHOD": "POST", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": query,
        "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/json",
        "HTTP_X_APPENGINE_QUEUENAME": "emails", "HTTP_X_APPENGINE_TASKNAME": "welcome-ada",
        "HTTP_X_TASKQ_SIGNATURE": signature if signature is not None else f"t={NOW},v1={expected_v1()}",
        "wsgi.input": io.BytesIO(body),
    }
    wsgiref.util.setup_testing_defaults(environ)
    environ.update(extra)
    return environ


def test_verify_wsgi_request_verifies_and_puts_the_body_back():
    environ = wsgi_environ()
    assert verify_wsgi_request(environ, SECRET, now=NOW)
    assert environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])) == REQUEST["body"]
    # Read twice (two middlewares): the body is still whole.
    environ = wsgi_environ()
    assert verify_wsgi_request(environ, SECRET, now=NOW) and verify_wsgi_request(environ, SECRET, now=NOW)
    assert environ["wsgi.input"].read() == REQUEST["body"]


def test_verify_wsgi_request_fails_on_a_tampered_body_but_still_puts_it_back():
    environ = wsgi_environ(body=b'{"to": "eve@example.com"}')
    assert not verify_wsgi_request(environ, SECRET, now=NOW)
    assert environ["wsgi.input"].read() == b'{"to": "eve@example.com"}'


def test_verify_wsgi_request_reads_only_content_length_bytes():
    environ = wsgi_environ()
    environ["wsgi.input"] = io.BytesIO(REQUEST["body"] + b"next request on the connection")
    assert verify_wsgi_request(environ, SECRET, now=NOW)
    assert environ["wsgi.input"].read() == REQUEST["body"]


def test_verify_wsgi_request_without_content_length_reads_a_terminated_input():
    environ = wsgi_environ(CONTENT_LENGTH="")
    environ["wsgi.input_terminated"] = True
    assert verify_wsgi_request(environ, SECRET, now=NOW)
    assert environ["wsgi.input"].read() == REQUEST["body"] and environ["CONTENT_LENGTH"] == str(len(REQUEST["body"]))


def test_verify_wsgi_request_fails_on_any_other_part():
    assert not verify_wsgi_request(wsgi_environ(REQUEST_METHOD="PUT"), SECRET, now=NOW)
    assert not verify_wsgi_request(wsgi_environ(query="x=2&y=a%2Fb"), SECRET, now=NOW)
    assert not verify_wsgi_request(wsgi_environ(path="/tasks/other"), SECRET, now=NOW)
    assert not verify_wsgi_request(wsgi_environ(HTTP_X_APPENGINE_TASKNAME="other"), SECRET, now=NOW)
    assert not verify_wsgi_request(wsgi_environ(HTTP_X_APPENGINE_QUEUENAME="other"), SECRET, now=NOW)
    assert not verify_wsgi_request(wsgi_environ(), SECRET, now=NOW + 301)
    assert not verify_wsgi_request(wsgi_environ(), "wrong", now=NOW)
    missing = wsgi_environ()
    del missing["HTTP_X_TASKQ_SIGNATURE"]
    assert not verify_wsgi_request(missing, SECRET, now=NOW)
    no_task = wsgi_environ()
    del no_task["HTTP_X_APPENGINE_TASKNAME"]
    assert not verify_wsgi_request(no_task, SECRET, now=NOW)


def test_the_raw_target_is_preferred_to_the_decoded_path():
    # PATH_INFO is percent-decoded; RAW_URI (gunicorn) and REQUEST_URI (uWSGI, mod_wsgi) are as sent.
    decoded = {"PATH_INFO": "/a b/c/d", "QUERY_STRING": "q=%2F"}
    assert wsgi_target({**decoded, "RAW_URI": "/a%20b/c%2Fd?q=%2F"}) == "/a%20b/c%2Fd?q=%2F"
    assert wsgi_target({**decoded, "REQUEST_URI": "/a%20b/c%2Fd?q=%2F"}) == "/a%20b/c%2Fd?q=%2F"
    assert wsgi_target(decoded) == "/a%20b/c/d?q=%2F"
    assert wsgi_target({"SCRIPT_NAME": "/app", "PATH_INFO": "/x", "QUERY_STRING": ""}) == "/app/x"
    assert wsgi_target({"PATH_INFO": "/caf\xc3\xa9"}) == "/caf%C3%A9"  # UTF-8 bytes carried as latin-1
    assert wsgi_target({}) == "/"
    assert wsgi_target({"RAW_URI": "http://worker.example.com:8080/a%2Fb?x=1", "PATH_INFO": "/a/b"}) == "/a%2Fb?x=1"
    assert wsgi_target({"REQUEST_URI": "https://worker.example.com?x=1"}) == "/?x=1"
    assert wsgi_target({"REQUEST_URI": "https://worker.example.com"}) == "/"
    target = "/a%2Fb?x=1"
    signature = sign(SECRET, method="POST", target=target, queue="emails", task="welcome-ada", body=REQUEST["body"],
                     timestamp=NOW)
    environ = wsgi_environ(path="/a/b", query="x=1", signature=signature, RAW_URI=target)
    assert verify_wsgi_request(environ, SECRET, now=NOW)


def test_verify_wsgi_request_in_a_real_http_server():
    seen: list[tuple[bool, bytes]] = []

    def app(environ, start_response):
        verified = verify_wsgi_request(environ, [SECRET, "next"])
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        seen.append((verified, body))
        start_response("204 No Content" if verified else "401 Unauthorized", [])
        return [b""]

    class Quiet(wsgiref.simple_server.WSGIRequestHandler):
        def log_message(self, *arguments):
            pass

    httpd = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        def post(target: str, body: bytes, signed_target: str | None = None, secret: str = SECRET) -> int:
            signature = sign(secret, method="POST", target=signed_target or target, queue="emails",
                             task="welcome-ada", body=body)
            connection = http.client.HTTPConnection("127.0.0.1", httpd.server_port, timeout=10)
            connection.request("POST", target, body=body, headers={
                "X-Taskq-Signature": signature, "X-AppEngine-QueueName": "emails",
                "X-AppEngine-TaskName": "welcome-ada", "Content-Type": "application/json"})
            status = connection.getresponse().status
            connection.close()
            return status

        assert post("/tasks/run?x=1&y=a%2Fb", REQUEST["body"]) == 204
        assert post("/tasks/run?x=1", b"", secret="next") == 204
        assert post("/tasks/run?x=2", REQUEST["body"], signed_target="/tasks/run?x=1") == 401
        assert post("/tasks/run", REQUEST["body"], secret="old") == 401
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
    assert seen == [(True, REQUEST["body"]), (True, b""), (False, REQUEST["body"]), (False, REQUEST["body"])]


# End to end ----------------------------------------------------------------------------------


class RawTargetHandler(wsgiref.simple_server.WSGIRequestHandler):
    """wsgiref with REQUEST_URI (the request target as received, as uWSGI and mod_wsgi give it)."""

    def get_environ(self):
        environ = super().get_environ()
        environ["REQUEST_URI"] = self.path
        return environ

    def log_message(self, *arguments):
        pass


def test_requests_a_server_pushes_verify(tmp_path):
    accepted = {"secrets": ["new-secret"]}
    seen: list[tuple[bool, str, bytes]] = []

    def app(environ, start_response):
        verified = verify_wsgi_request(environ, accepted["secrets"])
        seen.append((verified, wsgi_target(environ), environ["wsgi.input"].read()))
        start_response("204 No Content" if verified else "401 Unauthorized", [])
        return [b""]

    httpd = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=RawTargetHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    # Two secrets, as while rotating: the worker knows only the new one.
    server = ServerHarness(str(tmp_path / "data"), http_allow_networks="127.0.0.0/8",
                           http_signing_secrets="old-secret,new-secret")
    try:
        with Client(server.address, timeout=10) as client:
            client.create_queue("hooks", max_attempts=1, http_target={
                "uri": f"http://127.0.0.1:{httpd.server_port}/base", "headers": {"X-Env": "test"}})
            body = '{"name": "é"}'.encode()
            client.create_task("hooks", body, name="t1", http_request={
                "url": "/hook/a%2Fb?x=1&y=%20", "http_method": "put", "headers": {"Content-Type": "application/json"}})
            eventually(lambda: client.get_queue_stats("hooks").tasks_count == 0, message=str(seen))
            assert seen == [(True, "/base/hook/a%2Fb?x=1&y=%20", body)]

            accepted["secrets"] = ["not-the-servers"]
            client.create_task("hooks", b"", name="t2", http_request={"http_method": "DELETE"})
            failed = eventually(lambda: (task := client.get_task("queues/hooks/tasks/t2")).state
                                == task_pb2.TASK_STATE_FAILED and task, message=str(seen))
            assert seen[1] == (False, "/base", b"")
            assert failed.last_attempt.http_status == 401 and failed.response_count == 1
    finally:
        server.close()
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
