"""Option values as people type them: durations, rates, attributes, states."""

from __future__ import annotations

import argparse

import pytest

from taskq.cli import output, values


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90), ("0.1s", 0.1), ("250ms", 0.25), ("10m", 600), ("2h", 7200), ("31d", 31 * 86400),
    ("1h30m", 5400), ("30S", 30),
])
def test_durations_accept_seconds_and_units(text, seconds):
    assert values.duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5 minutes", "1x", "-3s", "nan", "10m-", "inf"])
def test_malformed_durations_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        values.duration(text)


@pytest.mark.parametrize(("text", "per_second"), [
    ("5/s", 5), ("120/m", 2), ("36/h", 0.01), ("8640/d", 0.1), ("2.5", 2.5), ("unlimited", None),
])
def test_rates_accept_app_engine_units(text, per_second):
    assert values.rate(text) == (per_second if per_second is None else pytest.approx(per_second))


@pytest.mark.parametrize("text", ["0/s", "5/x", "5/", "/s", "fast", "-1/s"])
def test_malformed_rates_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        values.rate(text)


def test_attributes_split_at_the_first_equals_sign():
    assert values.attribute("trace=a=b") == ("trace", "a=b")
    with pytest.raises(argparse.ArgumentTypeError):
        values.attribute("=value")


def test_headers_split_at_the_first_equals_sign():
    assert values.header("Authorization=Bearer a=b") == ("Authorization", "Bearer a=b")
    assert values.header("X-Empty=") == ("X-Empty", "")
    for text in ("X-Env", "=v", "X Env=1", "X-Env:=1"):
        with pytest.raises(argparse.ArgumentTypeError, match="NAME=VALUE"):
            values.header(text)


def test_http_methods_are_case_insensitive_and_listed_when_wrong():
    assert values.http_method("put") == "PUT" and values.http_method(" Options ") == "OPTIONS"
    with pytest.raises(argparse.ArgumentTypeError, match="POST, GET, HEAD, PUT, DELETE, PATCH, OPTIONS"):
        values.http_method("FETCH")

def test_states_accept_a_comma_separated_list():
    assert values.states("Ready,TASK_STATE_LEASED") == ["ready", "leased"]


def test_a_time_without_a_zone_is_local_time():
    assert values.time("2030-01-31T09:00:00").utcoffset() is not None


@pytest.mark.parametrize(("per_second", "text"), [(5, "5/s"), (0.5, "30/m"), (1 / 3600, "1/h"), (0.3, "18/m")])
def test_rates_print_in_the_first_whole_unit(per_second, text):
    assert output.rate_text(per_second) == text


@pytest.mark.parametrize(("seconds", "text"), [(0.1, "0.1s"), (600, "10m"), (5400, "90m"), (86400 * 31, "31d"),
                                               (0, "0s")])
def test_durations_print_in_the_largest_whole_unit(seconds, text):
    assert output.duration_text(seconds) == text
