"""Monitoring as code (components/monitoring) says only what can be true: every metric
an alert or a dashboard names is one that something really exposes, every alert has a
section in docs/operations.md, and every scrape target points at a port that exists.

Where the metric names come from:
- gateway, feedback and the trainer's job API: their own apps, built in-process and
  scraped on `/metrics` (a labelled metric with no sample yet still has its `# TYPE`
  line, so no traffic is needed);
- vLLM: the metric definitions in the installed vLLM's own metrics package
  (`vllm/v1/metrics/*.py`), read with `ast` (booting vLLM here costs a minute);
- kube-state-metrics and Kueue, which run in the cluster and not here: the short list
  `EXTERNAL` below, with where each name is documented.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ROOT / "docs" / "operations.md"

#: Metric names of exporters that run in the cluster only, sample names as scraped.
EXTERNAL = {
    # kube-state-metrics v2, docs/metrics/workload/job-metrics.md
    "kube_job_failed", "kube_job_status_active", "kube_job_status_start_time",
    # Kueue >= 0.6, site/content/en/docs/reference/metrics.md (pkg/metrics)
    "kueue_pending_workloads",
}
#: Sample names per metric type (the exposition adds these to the family's name).
_SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",), "histogram": (
    "_bucket", "_sum", "_count", "_created"), "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",), "unknown": ("",)}
_PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def sample_names(family: str, kind: str) -> set[str]:
    """The series names a metric family of `kind` is scraped as."""
    return {family + suffix for suffix in _SUFFIXES[kind]}


def scraped_names(metrics_text: str) -> set[str]:
    names: set[str] = set()
    for family in text_string_to_metric_families(metrics_text):
        names |= sample_names(family.name, family.type)
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not functions, labels or keywords)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings, e.g. label_replace's
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()", text):
        if match.group(1) not in _PROMQL_WORDS:
            names.add(match.group(1))
    return names


def vllm_names() -> set[str]:
    """Every metric the installed vLLM defines in its metrics package, as scraped."""
    spec = importlib.util.find_spec("vllm")  # located, not imported (that takes seconds)
    assert spec is not None and spec.submodule_search_locations, "vLLM is not installed"
    package = Path(spec.submodule_search_locations[0]) / "v1" / "metrics"
    kinds = {"_gauge_cls": "gauge", "Gauge": "gauge", "_counter_cls": "counter",
             "Counter": "counter", "_histogram_cls": "histogram", "Histogram": "histogram"}
    names: set[str] = set()
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            kind = kinds.get(func.attr if isinstance(func, ast.Attribute) else
                             getattr(func, "id", ""))
            args = [k.value for k in node.keywords if k.arg == "name"] + node.args[:1]
            if kind and args and isinstance(args[0], ast.Constant) and str(
                    args[0].value).startswith("vllm:"):
                names |= sample_names(args[0].value.removesuffix("_total"), kind)
    return names


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Source → the metric names it exposes."""
    from medgo_feedback.app import create_app as feedback_app
    from medgo_feedback.db import upgrade_to_head
    from medgo_feedback.settings import FeedbackSettings
    from medgo_gateway.app import create_app as gateway_app
    from medgo_gateway.settings import GatewaySettings
    from medgo_trainer.api.app import create_app as trainer_app
    from medgo_trainer.settings import TrainerSettings

    tmp = tmp_path_factory.mktemp("metrics")
    (tmp / "keys.json").write_text('{"keys": []}')
    feedback = FeedbackSettings(database_url=f"sqlite:///{tmp / 'feedback.db'}")
    upgrade_to_head(feedback)
    apps = {
        "gateway": gateway_app(GatewaySettings(
            spool_path=tmp / "spool.sqlite3", api_keys_file=tmp / "keys.json",
            inference_url="http://127.0.0.1:9", feedback_url="http://127.0.0.1:9")),
        "feedback": feedback_app(feedback),
        "trainer": trainer_app(TrainerSettings(jobs_dir=tmp / "jobs")),
    }
    found = {}
    for name, app in apps.items():
        with TestClient(app) as client:
            found[name] = scraped_names(client.get("/metrics").text)
    found["vllm"] = vllm_names()
    found["external"] = EXTERNAL
    return found


@pytest.fixture(scope="module")
def prod(rendered: dict[str, list[dict]]) -> list[dict]:
    return rendered["prod-a100"]


def _rules(prod: list[dict]) -> list[dict]:
    return [rule for o in prod if o["kind"] == "PrometheusRule"
            for group in o["spec"]["groups"] for rule in group["rules"]]


def _dashboards(prod: list[dict]) -> dict[str, dict]:
    return {f"{o['metadata']['name']}/{key}": json.loads(text) for o in prod
            if o["kind"] == "ConfigMap" and o["metadata"].get("labels", {}).get(
                "grafana_dashboard") == "1" for key, text in o["data"].items()}


def _dashboard_exprs(dashboard: dict) -> Iterator[tuple[str, str]]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def test_the_metric_name_reader_sees_what_promql_reads() -> None:
    expr = ('histogram_quantile(0.99, sum by (le, checkpoint) (rate(a_b_bucket{route="x",'
            'checkpoint=~"c.*"}[5m]))) > 2 and on (pod) vllm:kv_cache_usage_perc > 0.9 '
            'or max without (x) (time() - c_seconds offset 1h) unless day_of_week() != 1')
    assert metric_names(expr) == {"a_b_bucket", "vllm:kv_cache_usage_perc", "c_seconds"}


def test_the_sources_expose_the_names_the_alerts_need(exposed: dict[str, set[str]]) -> None:
    """Guards the reader: it found real names, including the ones added for the alerts."""
    assert {"medgo_gateway_requests_total", "medgo_gateway_request_seconds_bucket",
            "medgo_gateway_spool_oldest_age_seconds"} <= exposed["gateway"]
    assert {"medgo_feedback_write_errors_total",
            "medgo_feedback_exports_total"} <= exposed["feedback"]
    assert "medgo_trainer_jobs_submitted_total" in exposed["trainer"]
    assert {"vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
            "vllm:generation_tokens_total", "vllm:time_to_first_token_seconds_bucket"} <= (
        exposed["vllm"])
    assert "vllm:gpu_cache_usage_perc" not in exposed["vllm"]  # renamed in vLLM v1


def test_every_alert_and_panel_reads_metrics_that_exist(prod: list[dict],
                                                        exposed: dict[str, set[str]]) -> None:
    known = set().union(*exposed.values())
    used = [(f"alert {r['alert']}", str(r["expr"])) for r in _rules(prod)]
    used += [(f"dashboard {name}, panel {title!r}", expr)
             for name, board in _dashboards(prod).items()
             for title, expr in _dashboard_exprs(board)]
    assert len(used) > 20
    unknown = [f"{where}: {name}" for where, expr in used
               for name in sorted(metric_names(expr) - known)]
    assert not unknown, "metrics nothing exposes:\n" + "\n".join(unknown)


def test_an_unknown_metric_is_caught(exposed: dict[str, set[str]]) -> None:
    """Bad input: a misspelt metric in an alert is reported by name."""
    known = set().union(*exposed.values())
    typo = 'sum(rate(medgo_gateway_request_total{status=~"5.."}[5m])) > 0'
    assert metric_names(typo) - known == {"medgo_gateway_request_total"}


def test_the_alerts_cover_what_the_issue_asks(prod: list[dict]) -> None:
    exprs = {r["alert"]: str(r["expr"]) for r in _rules(prod)}
    needs = {
        "5xx rate per checkpoint": ("medgo_gateway_requests_total", 'status=~"5.."'),
        "p99 latency per checkpoint": ("medgo_gateway_request_seconds_bucket", "0.99"),
        "spool depth": ("medgo_gateway_spool_depth",),
        "spool oldest age": ("medgo_gateway_spool_oldest_age_seconds",),
        "feedback write errors": ("medgo_feedback_write_errors_total",),
        "vLLM waiting requests": ("vllm:num_requests_waiting",),
        "vLLM KV cache": ("vllm:kv_cache_usage_perc",),
        "training job failed": ("kube_job_failed",),
        "training job stuck": ("kube_job_status_start_time",),
        "export outside the audit pattern": ("medgo_feedback_exports_total",),
        "records kept past retention": ("medgo_feedback_oldest_record_age_seconds",
                                        "medgo_feedback_retention_period_seconds"),
        "export copies kept past retention": ("medgo_trainer_oldest_export_copy_age_seconds",
                                              'data", "export_copies"'),
    }
    for need, parts in needs.items():
        assert any(all(p in e for p in parts) for e in exprs.values()), need
    for name, expr in exprs.items():
        if "checkpoint" in expr or name.startswith("MedgoGateway"):
            assert "by (checkpoint)" in expr or "checkpoint)" in expr, name


def test_every_alert_has_a_runbook_section(prod: list[dict]) -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    alerts_part = text.split("\n## Alerts\n", 1)
    assert len(alerts_part) == 2, "docs/operations.md has no '## Alerts' section"
    sections = dict(re.findall(r"\n### (\w+)\n(.*?)(?=\n##|\Z)", alerts_part[1], re.S))
    for rule in _rules(prod):
        name = rule["alert"]
        assert name in sections, f"docs/operations.md, Alerts: no section '### {name}'"
        assert "**What to do**" in sections[name], f"section {name} says nothing to do"
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["annotations"]["summary"]


def test_the_monitoring_objects_are_selected(prod: list[dict]) -> None:
    """(Their schemas: test_kustomize.py validates every object prod renders.)"""
    monitoring = [o for o in prod if o["apiVersion"].startswith("monitoring.coreos.com/")]
    assert {o["kind"] for o in monitoring} == {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
    for obj in monitoring:
        assert obj["metadata"]["labels"]["prometheus"] == "medgo"  # the ruleSelector etc.


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_every_scrape_target_names_a_port_that_exists(prod: list[dict]) -> None:
    services = [o for o in prod if o["kind"] == "Service"]
    pods = [o["spec"]["template"] for o in prod if o["kind"] == "Deployment"]
    scraped = set()
    for monitor in (o for o in prod if o["kind"] == "ServiceMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        chosen = [s for s in services if _matches(selector, s["metadata"].get("labels", {}))]
        # The operator scrapes the selected Services that have the endpoint's port.
        for endpoint in monitor["spec"]["endpoints"]:
            targets = [s for s in chosen
                       if endpoint["port"] in {p.get("name") for p in s["spec"]["ports"]}]
            assert targets, (f"ServiceMonitor {monitor['metadata']['name']}: no selected "
                             f"Service has a port {endpoint['port']!r}")
            scraped |= {s["metadata"]["labels"]["app"] for s in targets}
    for monitor in (o for o in prod if o["kind"] == "PodMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        chosen = [p for p in pods if _matches(selector, p["metadata"]["labels"])]
        assert len(chosen) == 2, "stable and canary inference pods"
        for pod in chosen:
            ports = {p.get("name") for c in pod["spec"]["containers"] for p in c.get("ports", [])}
            for endpoint in monitor["spec"]["podMetricsEndpoints"]:
                assert endpoint["port"] in ports
            scraped.add(pod["metadata"]["labels"]["app"])
    assert scraped == {"gateway", "feedback", "trainer", "inference"}


def test_dashboards_are_configmaps_for_the_grafana_sidecar(prod: list[dict]) -> None:
    dashboards = _dashboards(prod)
    assert set(dashboards) == {"grafana-dashboard-serving/medgo-serving.json",
                               "grafana-dashboard-training/medgo-training.json"}
    uids = [board["uid"] for board in dashboards.values()]
    assert len(set(uids)) == len(uids)
    for board in dashboards.values():
        assert board["panels"] and all(p["targets"] for p in board["panels"])


def test_the_spool_reports_how_long_its_oldest_item_waited(tmp_path: Path) -> None:
    """The gauge behind MedgoSpoolStale: 0 when empty, the wait of the oldest pending
    item otherwise, back to 0 once delivered."""
    from medgo_gateway.spool import Spool

    spool = Spool(tmp_path / "spool.sqlite3")
    try:
        assert spool.oldest_age() == 0.0
        spool.put("interaction", "a", {"id": "a"})
        time.sleep(0.05)
        spool.put("interaction", "b", {"id": "b"})
        first = spool.oldest_age()
        assert first >= 0.05
        (head, _) = spool.head(2)
        spool.ack([head.seq])
        assert spool.oldest_age() < first
        spool.ack([item.seq for item in spool.head(1)])
        assert spool.oldest_age() == 0.0
    finally:
        spool.close()
