"""The task state machine's one transition table."""

import pytest

from taskq.core.model import TaskState
from taskq.core.states import TRANSITIONS, Event, IllegalTransition, allowed, transition


def test_only_a_ready_task_can_be_leased():
    assert allowed(TaskState.READY, Event.LEASE)
    for state in (TaskState.SCHEDULED, TaskState.LEASED, TaskState.FAILED):
        assert not allowed(state, Event.LEASE)


def test_acknowledging_a_task_that_is_not_leased_is_illegal():
    with pytest.raises(IllegalTransition):
        transition(TaskState.READY, Event.ACK, None)


def test_a_failed_attempt_can_end_in_retry_failure_or_dead_letter_only():
    for target in (TaskState.READY, TaskState.SCHEDULED, TaskState.FAILED, None):
        transition(TaskState.LEASED, Event.EXPIRE, target)
    with pytest.raises(IllegalTransition):
        transition(TaskState.LEASED, Event.EXPIRE, TaskState.LEASED)


def test_run_makes_any_unleased_task_ready_but_not_a_leased_one():
    for state in (TaskState.SCHEDULED, TaskState.READY, TaskState.FAILED):
        transition(state, Event.RUN, TaskState.READY)
    assert not allowed(TaskState.LEASED, Event.RUN)


def test_every_state_can_be_deleted():
    assert all((state, Event.DELETE) in TRANSITIONS for state in TaskState)
