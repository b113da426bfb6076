"""A Python 2.7 App Engine app after its move to Python 3, running on taskq.

The code is what it would be on App Engine's Python 3 runtime with Google's
appengine-python-standard SDK: Flask instead of webapp2, `wrap_wsgi_app` for the APIs, and
`google.appengine.api.taskqueue` / `google.appengine.ext.deferred` as before. What taskq adds
is marked "taskq:" (docs/appengine.md explains each step):

    POST /signup            form email: a welcome email task (push queue `email`), an event
                            (pull queue `events`, tag "signup") and a deferred call
    POST /newsletter        form to (repeated): one email task per recipient, in one add
    POST /orders            form order: a charge task (push queue `payments`) whose first
                            attempt fails, retried with App Engine's backoff
    POST /events            form kind, user: an event for the pull queue, tagged with its kind
    POST /workers/events    leases events by tag (?tag=..., or the oldest tag), handles them,
                            deletes them (what cron would call; taskq has no cron)
    GET  /received          what the task handlers have seen so far, as JSON

Run it (the HTTP port of `taskq serve` in API_HOST/API_PORT; see README.md here):

    API_HOST=127.0.0.1 API_PORT=8081 flask --app main run --port 8080
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time

from flask import Flask, abort, jsonify, request
from google.appengine.api import taskqueue, wrap_wsgi_app
from google.appengine.ext import deferred

from taskq.client.appengine import with_api_ticket
from taskq.client.signature import verify_wsgi_request

app = Flask(__name__)
log = logging.getLogger("example")

#: taskq: the secret `taskq serve --http-signing-secrets` signs push requests with (unset: not checked).
SIGNING_SECRET = os.environ.get("TASKQ_SIGNING_SECRET")

# What the task handlers saw, for GET /received (a real app would write to its database).
_received: list[dict] = []
_received_lock = threading.Lock()


def record(kind: str, **fields) -> None:
    headers = {name: value for name, value in request.headers.items() if name.lower().startswith("x-appengine-")}
    with _received_lock:
        _received.append({"kind": kind, "at": time.time(), "headers": headers, **fields})


# User-facing handlers: they add tasks ---------------------------------------------------------

@app.get("/")
def home():
    return "ok\n"


@app.post("/signup")
def signup():
    email = request.form["email"]
    taskqueue.add(queue_name="email", url="/tasks/send-email", params={"to": email, "subject": "Welcome!"})
    taskqueue.Queue("events").add(taskqueue.Task(payload=json.dumps({"user": email}), method="PULL", tag="signup"))
    deferred.defer(update_signup_count, email)  # runs update_signup_count(email) in the default queue
    return "signed up\n", 201


@app.post("/newsletter")
def newsletter():
    tasks = [taskqueue.Task(url="/tasks/send-email", params={"to": to, "subject": "News"})
             for to in request.form.getlist("to")]
    taskqueue.Queue("email").add(tasks)  # up to 100 tasks per call, as on App Engine
    return jsonify(names=[task.name for task in tasks])


@app.post("/orders")
def order():
    order_id = request.form["order"]
    try:
        # A named task is added once: while it exists, and for 9 days after it ran, the name is taken.
        task = taskqueue.add(queue_name="payments", url="/tasks/charge", params={"order": order_id},
                             name=f"charge-{order_id}")
    except (taskqueue.TaskAlreadyExistsError, taskqueue.TombstonedTaskError):
        return jsonify(name=f"charge-{order_id}", added=False)
    return jsonify(name=task.name, added=True), 201


@app.post("/events")
def event():
    kind = request.form["kind"]
    payload = json.dumps({"user": request.form["user"], "kind": kind})
    taskqueue.Queue("events").add(taskqueue.Task(payload=payload, method="PULL", tag=kind))
    return "queued\n", 201


# Push task handlers -------------------------------------------------------------------------

@app.post("/tasks/send-email")
def send_email():
    # As on App Engine: only the task queue sets this header (here, task_urls_for_taskq_only
    # below makes sure of it).
    if "X-AppEngine-QueueName" not in request.headers:
        abort(403)
    log.info("sending %r to %s", request.form["subject"], request.form["to"])
    record("email", to=request.form["to"], subject=request.form["subject"])
    return "sent\n"


_failed_once: set[str] = set()


@app.post("/tasks/charge")
def charge():
    if "X-AppEngine-QueueName" not in request.headers:
        abort(403)
    task = request.headers["X-AppEngine-TaskName"]
    record("charge", order=request.form["order"])
    if task not in _failed_once:  # the payment provider is down the first time
        _failed_once.add(task)
        return "payment provider unavailable, try again\n", 500  # any answer but 2xx: retried later
    return "charged\n"


def update_signup_count(email: str) -> None:
    """Run by deferred.defer: the SDK's handler at /_ah/queue/deferred unpickles the call."""
    with _received_lock:
        _received.append({"kind": "deferred", "at": time.time(), "email": email})


# Pull queue worker --------------------------------------------------------------------------

@app.post("/workers/events")
def handle_events():
    """Leases up to 100 events with one tag for 60 s, handles them, deletes them. On App Engine
    cron would call this; with taskq, call it from a timer, a loop or your scheduler."""
    queue = taskqueue.Queue("events")
    tasks = queue.lease_tasks_by_tag(60, 100, tag=request.args.get("tag"))  # no tag: the oldest task's tag
    events = [json.loads(task.payload) for task in tasks]
    for event in events:
        log.info("event %s of %s", event.get("kind", "signup"), event["user"])
    if tasks:
        queue.delete_tasks(tasks)  # done: deleted, or they would be leased again when the lease ends
    return jsonify(tag=tasks[0].tag if tasks else None, events=events, left=queue.fetch_statistics().tasks)


@app.get("/received")
def received():
    with _received_lock:
        return jsonify(list(_received))


# Wiring -------------------------------------------------------------------------------------

def task_urls_for_taskq_only(wsgi_app):
    """taskq: App Engine stripped X-AppEngine-* headers from outside requests; nothing does
    here unless a proxy does. So task URLs (and deferred's /_ah/queue/deferred, which
    unpickles its body: code execution for whoever reaches it) answer only requests signed
    by taskq, when the app knows the signing secret."""

    def guarded(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if SIGNING_SECRET and path.startswith(("/tasks/", "/_ah/queue/")) \
                and not verify_wsgi_request(environ, SIGNING_SECRET):
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [b"task URLs answer taskq only\n"]
        return wsgi_app(environ, start_response)

    return guarded


# App Engine's APIs in every request (and deferred's handler at /_ah/queue/deferred) ...
app.wsgi_app = wrap_wsgi_app(app.wsgi_app, use_deferred=True)
# ... taskq: the task URLs guarded, and an API ticket for requests that come without one.
app.wsgi_app = with_api_ticket(task_urls_for_taskq_only(app.wsgi_app))
