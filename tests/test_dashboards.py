"""The shipped monitoring files: Prometheus's own tools accept them, the alert rules fire as specified, and a
real Prometheus scraping a live worker has data for every expression of the dashboards and the rules."""

import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from antifraud import metrics
from antifraud.stack.embedded import Endpoints
from antifraud.stack.process import free_port, spawn, stop
from antifraud.stack.worker import WorkerProcess, metric_sum, parse_metrics
from antifraud.web import metrics as web_metrics
from tests.conftest import wait_consumed, wait_for
from tests.test_holds import DAY, T0, atm_transfer
from tests.test_metrics import confirm_every_case
from tests.test_pipeline_integration import BROKEN, LIMIT, cold_calls, produce
from tests.test_web_api import CHECK
from tests.web_helpers import as_user, serve

ROOT = Path(__file__).resolve().parents[1]
GRAFANA = ROOT / "dashboards" / "grafana"
PROMETHEUS = ROOT / "dashboards" / "prometheus"
DASHBOARDS = sorted(GRAFANA.glob("*.json"))
WORKER_JOB = "antifraud-worker"
WEB_JOB = "antifraud-web"
RULE_FILES = {"alerts.yml": WORKER_JOB, "web-alerts.yml": WEB_JOB}
"""Each rule file and the job whose series its rules read; web.json is the web app's dashboard, the others
the workers'."""
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "5m"}
"""Grafana fills these in; the test scrapes every second, so a minute holds plenty of samples."""
COMPARISON = re.compile(r"^(?P<signal>.+?)\s*(?:==|!=|>=|<=|>|<)\s*-?[0-9.]+$", re.S)


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/bin")
    if found is None:
        pytest.fail(f"{name} not found: install Debian's prometheus package (apt-get install prometheus)")
    return found


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *args], capture_output=True, text=True, cwd=PROMETHEUS, timeout=60)


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_expressions(job: str | None = None) -> list[tuple[str, str]]:
    """(where, PromQL) for every query of every dashboard (of ``job``'s only, if given), Grafana's variables
    filled in."""
    found = []
    for path in DASHBOARDS:
        if job is not None and (path.stem == "web") != (job == WEB_JOB):
            continue
        for panel in panels(json.loads(path.read_text())):
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                found.append((f"{path.name}: {panel['title']} [{target['refId']}]", expr))
    return found


def alert_rules(job: str | None = None) -> list[dict[str, Any]]:
    """The rules of every rule file (of ``job``'s only, if given)."""
    return [
        rule
        for name, of in RULE_FILES.items()
        if job is None or of == job
        for group in yaml.safe_load((PROMETHEUS / name).read_text())["groups"]
        for rule in group["rules"]
    ]


def rule_signals(job: str | None = None) -> list[tuple[str, str]]:
    """(alert, SIGNAL) of every rule: its expr without the threshold (alerts.yml's convention)."""
    signals = []
    for rule in alert_rules(job):
        match = COMPARISON.match(rule["expr"].strip())
        assert match, f"{rule['alert']}: expr is not 'SIGNAL OP NUMBER': {rule['expr']!r}"
        signals.append((rule["alert"], match["signal"]))
    return signals


# -- static checks -----------------------------------------------------------------------------------


def test_promtool_accepts_the_scrape_config_and_the_rules() -> None:
    config = promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    rules = promtool("check", "rules", *RULE_FILES)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    for name, job in RULE_FILES.items():
        assert f"{len(alert_rules(job))} rules found" in rules.stdout, name
    assert {r["alert"] for r in alert_rules()} >= {
        "AntifraudWorkerDown",
        "AntifraudConsumerLagGrowing",
        "AntifraudDeadLettersRising",
        "AntifraudHoldReleasesOverdue",
    }


def test_each_alert_fires_on_its_unit_test_series_and_not_before() -> None:
    tests = [name.replace(".yml", ".test.yml") for name in RULE_FILES]
    result = promtool("test", "rules", *tests)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {a for name in tests for a in re.findall(r"alertname: (\w+)", (PROMETHEUS / name).read_text())}
    assert tested == {r["alert"] for r in alert_rules()}, "every alert has a unit test"


def test_dashboards_are_grafana_json_over_the_provisioned_datasource() -> None:
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    assert {p.stem for p in DASHBOARDS} == {"overview", "detectors", "holds-and-cases", "pipeline-health", "web"}
    uids = set()
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        uids.add(dashboard["uid"])
        ids = [p["id"] for p in panels(dashboard)]
        assert len(ids) == len(set(ids)), f"{path.name}: panel ids repeat"
        for panel in panels(dashboard):
            assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, f"{path.name}: {panel['title']} too wide"
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == uid, f"{path.name}: {panel['title']} not on the provisioned datasource"
            refs = [t["refId"] for t in panel["targets"]]
            assert refs and len(refs) == len(set(refs)), f"{path.name}: {panel['title']}"
    assert len(uids) == len(DASHBOARDS)


def test_dashboards_and_rules_use_only_series_the_code_exports() -> None:
    exported = {
        m._name for module in (metrics, web_metrics) for m in vars(module).values() if isinstance(m, MetricWrapperBase)
    }
    suffixes = re.compile(r"_(bucket|sum|count|total)$")
    used = {
        suffixes.sub("", name)
        for _, expr in dashboard_expressions() + rule_signals()
        for name in re.findall(r"\bantifraud_[a-z_]+", expr)
    }
    assert len(used) > 10, "too few antifraud_ series found: the extraction is broken"
    assert used <= exported, used - exported


# -- a live worker scraped by a real Prometheus ------------------------------------------------------


class Prometheus:
    """A Prometheus server on a free port, over the shipped rules, scraping one target of a shipped job every
    second."""

    def __init__(self, workdir: Path, port: int, job_name: str = WORKER_JOB) -> None:
        shipped = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
        job = next(j for j in shipped["scrape_configs"] if j["job_name"] == job_name)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(PROMETHEUS / name) for name in shipped["rule_files"]],
            "scrape_configs": [
                {
                    "job_name": job["job_name"],
                    "metrics_path": job["metrics_path"],
                    "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
                }
            ],
        }
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.log_path = workdir / "prometheus.log"
        self.proc = spawn(
            [
                tool("prometheus"),
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            log_path=self.log_path,
        )
        wait_for(self._ready, 30, f"Prometheus ready (log {self.log_path})")

    def _ready(self) -> bool:
        assert self.proc.poll() is None, self.log_path.read_text()[-2000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.api("query", query=expr)["result"]

    def alert_states(self) -> dict[str, set[str]]:
        states: dict[str, set[str]] = {}
        for alert in self.api("alerts")["alerts"]:
            states.setdefault(alert["labels"]["alertname"], set()).add(alert["state"])
        return states

    def stop(self) -> None:
        stop(self.proc)


@pytest.mark.integration
def test_prometheus_scraping_a_live_worker_has_data_for_every_expression(
    stack: Endpoints, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    worker = start_worker()
    prometheus = Prometheus(tmp_path / "prometheus", worker.web_port)
    try:
        # Scraped before any traffic, so increase() sees the counters rise from their first sample.
        wait_for(lambda: bool(prometheus.query(f'up{{job="{WORKER_JOB}"}} == 1')), 30, "a first scrape")
        # Traffic that moves every series: an alert (and its case, confirmed and delivered), a dead
        # letter, holds created and one released.
        calls = cold_calls(LIMIT + 3)
        transfers = [atm_transfer("t-1", T0), atm_transfer("t-2", T0 + DAY, payer="6222000000000002")]
        produce(stack, calls + transfers, BROKEN[:1])
        wait_consumed(worker, len(calls) + len(transfers) + 1)
        wait_for(lambda: metric_sum(worker.scrape(), "antifraud_cases", state="new") == 1, what="the alert's case")
        confirm_every_case(stack.redis_url)
        wait_for(lambda: metric_sum(worker.scrape(), "antifraud_deliveries_total") >= 1, what="a delivery")

        expressions = dashboard_expressions(WORKER_JOB) + [(f"alerts.yml: {a}", s) for a, s in rule_signals(WORKER_JOB)]
        empty: list[tuple[str, str]] = []

        def all_have_data() -> bool:
            empty[:] = [(where, expr) for where, expr in expressions if not prometheus.query(expr)]
            return not empty

        try:
            wait_for(all_have_data, 60, "data for every expression")
        except AssertionError:
            raise AssertionError("no data for:\n" + "\n".join(f"  {w}: {e}" for w, e in empty)) from None

        rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
        assert {r["name"] for r in rules} == {r["alert"] for r in alert_rules()}
        assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
        wait_for(lambda: "AntifraudDeadLettersRising" in prometheus.alert_states(), 30, "the dead-letter alert")
        assert "AntifraudWorkerDown" not in prometheus.alert_states()

        worker.stop()
        wait_for(lambda: "AntifraudWorkerDown" in prometheus.alert_states(), 30, "the worker-down alert")
        assert prometheus.query(f'up{{job="{WORKER_JOB}"}} == 0')
    finally:
        prometheus.stop()


@pytest.mark.integration
def test_prometheus_scraping_the_web_app_has_data_for_every_web_expression(stack: Endpoints, tmp_path: Path) -> None:
    with serve(stack) as base_url:
        prometheus = Prometheus(tmp_path / "prometheus", int(base_url.rsplit(":", 1)[1]), WEB_JOB)
        try:
            wait_for(lambda: bool(prometheus.query(f'up{{job="{WEB_JOB}"}} == 1')), 30, "a first scrape")
            before = parse_metrics(httpx.get(f"{base_url}/metrics").text)  # the process's counters: other tests' too
            for _ in range(3):  # traffic: checks, a refused login
                assert httpx.post(f"{base_url}/api/check", json=CHECK, headers=as_user("teller")).status_code == 200
            assert httpx.post(f"{base_url}/api/session", json={"token": "guess"}).status_code == 401
            page = httpx.get(f"{base_url}/metrics").text
            after = parse_metrics(page)

            def grew(name: str) -> float:
                return metric_sum(after, name) - metric_sum(before, name)

            assert grew("antifraud_web_check_decisions_total") == 3 and grew("antifraud_web_login_failures_total") == 1
            assert metric_sum(after, "antifraud_web_request_seconds_count", route="/api/check") >= 3
            label_values = {value for _, labels in after for _, value in labels}
            assert not [v for v in label_values if "6222" in v or "B001" in v], "route templates, never paths"
            expressions = dashboard_expressions(WEB_JOB) + [
                (f"web-alerts.yml: {a}", s) for a, s in rule_signals(WEB_JOB)
            ]
            empty: list[tuple[str, str]] = []

            def all_have_data() -> bool:
                empty[:] = [(where, expr) for where, expr in expressions if not prometheus.query(expr)]
                return not empty

            try:
                wait_for(all_have_data, 60, "data for every web expression")
            except AssertionError:
                raise AssertionError("no data for:\n" + "\n".join(f"  {w}: {e}" for w, e in empty)) from None
            rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
            assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
        except BaseException:
            prometheus.stop()
            raise
    wait_for(lambda: "AntifraudWebDown" in prometheus.alert_states(), 90, "the web-down alert")
    prometheus.stop()
