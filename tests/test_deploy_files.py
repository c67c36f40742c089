"""docker-compose.yml, reviewed by a test: no Docker engine here, so read it as the spec says."""

from __future__ import annotations

import re
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
    assert len(re.findall(r"^FROM ", dockerfile, re.M)) == 2
    assert re.search(r"^USER clientela$", dockerfile, re.M)


def test_keys_are_made_once_and_shared_read_only() -> None:
    services = COMPOSE["services"]
    assert "clientela keys" in services["prepare"]["command"][-1]
    assert "clientela-keys:/data/keys" in services["prepare"]["volumes"]
    for name in ("identity", "orders", "notifications"):  # sign, seal or unseal tokens
        assert "clientela-keys:/data/keys:ro" in services[name]["volumes"]
        assert services[name]["environment"]["CLIENTELA_VAR_DIR"] == "/data"


def test_the_gateway_counts_rate_limits_in_redis() -> None:
    gateway = COMPOSE["services"]["gateway"]
    assert gateway["environment"]["REDIS_URL"].startswith("redis://redis:")
    assert gateway["depends_on"]["redis"]["condition"] == "service_healthy"
