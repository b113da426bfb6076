"""A push stream's server side (core/dispatch.py Subscriber): its outbox is bounded, so a client
that sends answers without reading the refusals cannot make the server hold them all."""

from __future__ import annotations

from taskq.core import dispatch
from taskq.core.dispatch import Delivery, Subscriber
from taskq.core.errors import InvalidArgument
from taskq.core.model import Task
from taskq.core.push import Refusal


def refusal() -> list[Refusal]:
    return [Refusal("queues/q/tasks/t", "token", InvalidArgument("bad"))]


def test_an_outbox_the_stream_does_not_drain_ends_the_stream_at_its_bound(monkeypatch):
    monkeypatch.setattr(dispatch, "MAX_OUTBOX_MESSAGES", 8)
    subscriber = Subscriber("q", max_outstanding=10)
    for _ in range(100):
        subscriber.refuse(refusal())
    assert subscriber.closed and subscriber.ended.is_set()
    assert subscriber.end_error is not None and subscriber.end_error.reason == "STREAM_NOT_READ"
    assert subscriber.outbox.qsize() == 8 + 1  # what was queued, and the end marker; no more
    subscriber.deliver([Task("t", 0, 0)])
    assert subscriber.outbox.qsize() == 9


def test_an_outbox_the_stream_drains_never_ends_it(monkeypatch):
    monkeypatch.setattr(dispatch, "MAX_OUTBOX_MESSAGES", 8)
    subscriber = Subscriber("q", max_outstanding=10)
    for _ in range(100):
        subscriber.refuse(refusal())
        assert isinstance(subscriber.outbox.get_nowait(), dispatch.Refusals)
    subscriber.deliver([Task("t", 0, 0)])
    assert isinstance(subscriber.outbox.get_nowait(), Delivery)
    assert not subscriber.closed
