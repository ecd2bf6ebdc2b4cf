"""The Grafana dashboard shipped in deploy/ asks only for metrics the product exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

import conversations.telemetry  # noqa: F401 - registers the product's metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "agentchat.json"
METRIC = re.compile(r"\bagentchat_[a-z_]+")


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def exported_names() -> set[str]:
    """The series names the product's metrics give (labelled ones too, before any value is observed)."""
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        if family.name.startswith("agentchat_")
        for suffix in SUFFIXES.get(family.type, ("",))
    }


def test_every_query_of_the_dashboard_names_an_exported_metric():
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    named = {name for expr in exprs for name in METRIC.findall(expr)}
    exported = exported_names()

    assert len(exprs) >= 12
    assert named - exported == set()
    # Every metric the operators alert on is on the dashboard.
    for wanted in (
        "agentchat_runs_active",
        "agentchat_runs_finished_total",
        "agentchat_first_token_seconds_bucket",
        "agentchat_model_errors_total",
        "agentchat_event_log_errors_total",
        "agentchat_database_seconds_bucket",
        "agentchat_redis_seconds_bucket",
    ):
        assert wanted in named


def test_the_panels_fit_the_grid_without_overlapping():
    dashboard = json.loads(DASHBOARD.read_text())
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
        mine = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, panel["title"]
        cells |= mine
