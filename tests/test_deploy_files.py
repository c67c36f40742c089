"""docker-compose.yml, reviewed by a test: no Docker engine here, so read it as the spec says."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from ops.registry import SERVICES

REPO = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
APP_SERVICES = {info.name for info in SERVICES}


def test_every_service_and_the_gateway_run_from_the_shared_image() -> None:
    services = COMPOSE["services"]
    assert {"rabbitmq", "postgres", "mailpit", "prepare", "gateway"} | APP_SERVICES <= \
        set(services)
    for name in APP_SERVICES | {"gateway", "prepare"}:
        build = services[name]["build"]
        assert (REPO / build["context"] / build["dockerfile"]).is_file()
    for info in SERVICES:
        assert services[info.name]["command"][-1] == info.class_path
        module = info.class_path.split(":")[0].replace(".", "/") + ".py"
        assert (REPO / module).is_file()


def test_start_order_waits_for_health_and_for_migrations() -> None:
    services = COMPOSE["services"]
    for name in APP_SERVICES | {"gateway"}:
        depends = services[name]["depends_on"]
        assert depends["rabbitmq"]["condition"] == "service_healthy"
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["prepare"]["condition"] == "service_completed_successfully"
        assert "test" in services[name]["healthcheck"]
    for name, spec in services.items():
        for dependency in spec.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"


def test_services_can_be_scaled() -> None:
    for name in APP_SERVICES:
        spec = COMPOSE["services"][name]
        assert "container_name" not in spec and "ports" not in spec, name


def test_each_service_has_its_own_database_created_at_init() -> None:
    init_sql = (REPO / "deploy/postgres/init.sql").read_text()
    environment = COMPOSE["services"]["orders"]["environment"]
    for info in SERVICES:
        url = environment[info.url_env]
        database = url.rsplit("/", 1)[-1]
        assert re.search(rf"CREATE DATABASE {database};", init_sql), database
    assert environment["AMQP_URI"].startswith("amqp://")


def test_dockerfile_is_multi_stage_and_non_root() -> None:
    dockerfile = (REPO / "deploy/Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?$", dockerfile, re.M)
    assert [name for _, name in stages] == ["web", "build", ""]
    assert re.search(r"^USER clientela$", dockerfile, re.M)


def test_the_image_carries_the_admins_libraries_from_the_lock_file() -> None:
    dockerfile = (REPO / "deploy/Dockerfile").read_text()
    assert "COPY gateway/web/package.json gateway/web/package-lock.json ./" in dockerfile
    assert "RUN npm ci " in dockerfile
    assert "COPY --from=web /web/node_modules ./gateway/web/node_modules" in dockerfile
    # The gateway serves these files by these paths (gateway/blueprints/web.py).
    from gateway.blueprints.web import VENDOR_FILES

    lock = json.loads((REPO / "gateway/web/package-lock.json").read_text())
    for package, _path in VENDOR_FILES.values():
        assert f"node_modules/{package}" in lock["packages"], package


def test_keys_are_made_once_and_shared_read_only() -> None:
    services = COMPOSE["services"]
    assert "clientela keys" in services["prepare"]["command"][-1]
    assert "clientela-keys:/data/keys" in services["prepare"]["volumes"]
    for name in APP_SERVICES:  # each signs, seals or unseals tokens
        assert "clientela-keys:/data/keys:ro" in services[name]["volumes"]
        assert services[name]["environment"]["CLIENTELA_VAR_DIR"] == "/data"


def test_the_gateway_counts_rate_limits_in_redis() -> None:
    gateway = COMPOSE["services"]["gateway"]
    assert gateway["environment"]["REDIS_URL"].startswith("redis://redis:")
    assert gateway["depends_on"]["redis"]["condition"] == "service_healthy"


# What an operator must set: the file refuses to start without it.
COMPOSE_ENV = {**os.environ, "METRICS_TOKEN": "a-scraper-token"}


def test_metrics_need_a_token_and_identity_reaches_redis() -> None:
    environment = COMPOSE["x-app"]["environment"]
    assert environment["METRICS_TOKEN"].startswith("${METRICS_TOKEN:?")
    identity = COMPOSE["services"]["identity"]
    assert identity["environment"]["REDIS_URL"].startswith("redis://redis:")
    assert identity["depends_on"]["redis"]["condition"] == "service_healthy"


def test_memory_limits_hold_the_measured_peaks() -> None:
    memory = json.loads((REPO / "deploy" / "memory-peaks.json").read_text())
    units = {"k": 1 / 1024, "m": 1, "g": 1024}
    for name, peak in memory["peaks_mib"].items():
        limit = COMPOSE["services"][name]["mem_limit"]
        mib = float(limit[:-1]) * units[limit[-1].lower()]
        needed = peak["mib"] * memory["headroom"] * memory["pod_processes"].get(name, 1)
        assert mib >= needed, f"{name}: mem_limit {limit} < {needed:.0f} MiB"


def _compose_config(path: Path) -> subprocess.CompletedProcess[str]:
    """`docker compose config` where the Compose plugin exists; else Debian's docker-compose
    (1.29), which checks the file against the Compose spec schema it carries, with no engine.
    That schema predates the top-level `name`, so the copy it reads leaves `name` out."""
    plugin = shutil.which("docker") and subprocess.run(
        ["docker", "compose", "version"], capture_output=True).returncode == 0
    if plugin:
        return subprocess.run(["docker", "compose", "-f", str(path), "config", "--quiet"],
                              capture_output=True, text=True, env=COMPOSE_ENV)
    assert shutil.which("docker-compose"), (
        "no Compose client to check docker-compose.yml: apt-get install docker-compose "
        "(or the docker compose plugin)")
    spec = yaml.safe_load(path.read_text())
    spec.pop("name", None)
    copy = path.with_name(".compose-check.yml")
    copy.write_text(yaml.safe_dump(spec))
    try:
        return subprocess.run(["docker-compose", "-f", str(copy), "config", "--quiet"],
                              capture_output=True, text=True, cwd=path.parent,
                              env={**COMPOSE_ENV, "COMPOSE_PROJECT_NAME": "clientela"})
    finally:
        copy.unlink()


def test_compose_file_is_valid_by_the_compose_spec(tmp_path: Path) -> None:
    checked = _compose_config(REPO / "docker-compose.yml")
    assert checked.returncode == 0, checked.stderr
    # the check can fail: a misspelt key is refused
    broken = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    broken["services"]["orders"]["dependson"] = broken["services"]["orders"].pop("depends_on")
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump(broken))
    refused = _compose_config(tmp_path / "docker-compose.yml")
    assert refused.returncode != 0 and "dependson" in refused.stderr + refused.stdout
