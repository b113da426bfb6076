"""deploy/prometheus/alerts.yml and deploy/grafana/taskq-dashboard.json hold together: the
rules file is what Prometheus loads (groups of named rules with a severity and a summary), and
every expression of both names only metrics a real server exports (promtool is not at hand:
this is the check that a renamed metric breaks)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from support.scrape import Scrape

from harness import ServerHarness, fill
from taskq.v1 import queue_pb2

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "taskq-dashboard.json"

#: Metrics Prometheus makes itself, for every target.
PROMETHEUS_OWN = {"up"}
_KEYWORDS = {"and", "or", "unless", "bool", "offset"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not its functions, labels or keywords)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # range selectors
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w.:])[A-Za-z_:][\w:]*", expr):
        if expr[match.end():].lstrip().startswith("(") or match.group() in _KEYWORDS:
            continue  # a function or an aggregation
        names.add(match.group())
    return names


def test_metric_names_finds_the_selected_metrics_only():
    expr = ('histogram_quantile(0.99, sum by (instance, le) (rate(x_bucket{job=~"a|b"}[5m]))) > 0.05 '
            'unless on (queue) max by (queue) (y) == 1 and z offset 5m')
    assert metric_names(expr) == {"x_bucket", "y", "z"}


@pytest.fixture(scope="module")
def exported(request, tmp_path_factory) -> set[str]:
    """The sample names of a scrape of a busy server on each engine (each exports its own
    storage figures)."""
    names: set[str] = set()
    settings = [{}, {"database": request.getfixturevalue("postgres_cluster").new_database()}]
    for index, engine_settings in enumerate(settings):
        server = ServerHarness(str(tmp_path_factory.mktemp(f"deploy{index}")), http_listen="127.0.0.1:0",
                               **engine_settings)
        try:
            server.create_queue("q", queue_pb2.QUEUE_TYPE_PULL)
            fill(server, "q", 3)
            names |= Scrape(server).names()
        finally:
            server.close()
    return names


def alert_rules() -> list[dict]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_alerts_file_is_groups_of_named_rules_with_a_severity_and_a_summary():
    document = yaml.safe_load(ALERTS.read_text())
    groups = document["groups"]
    assert len({group["name"] for group in groups}) == len(groups)
    rules = alert_rules()
    assert len({rule["alert"] for rule in rules}) == len(rules)
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s")), rule["alert"]
    wanted = {"TaskqDown", "TaskqQueueBackingUp", "TaskqTasksDeadLettered", "TaskqRpcErrors", "TaskqFsyncSlow"}
    assert wanted <= {rule["alert"] for rule in rules}


def test_every_alert_expression_names_metrics_a_server_exports(exported):
    for rule in alert_rules():
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= exported | PROMETHEUS_OWN, (rule["alert"], names - exported)


def test_every_dashboard_query_names_metrics_a_server_exports(exported):
    dashboard = json.loads(DASHBOARD.read_text())
    targets = [target for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(targets) > 20
    for target in targets:
        names = metric_names(target["expr"])
        assert names and names <= exported | PROMETHEUS_OWN, (target["expr"], names - exported)
    variables = [v for v in dashboard["templating"]["list"] if v["type"] == "query"]
    for variable in variables:
        [metric] = re.findall(r"label_values\((\w+)", variable["query"]["query"])
        assert metric in exported, variable["name"]
