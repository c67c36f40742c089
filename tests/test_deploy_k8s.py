"""deploy/k8s, rendered by kustomize (kubectl's) and checked against the Kubernetes schemas
(kubernetes-validate, strict: an unknown or misspelt field fails), then read for what an
operator relies on: probes, resources, autoscaling, no root, external RabbitMQ and PostgreSQL."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from ops.registry import SERVICES

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"  # the oldest release we support
APP = {info.name: info for info in SERVICES}


def render(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl renders the kustomizations: apt-get install kubernetes-client"
    rendered = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True,
                              text=True, check=False)
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


@pytest.fixture(scope="module")
def production() -> list[dict[str, Any]]:
    return render(K8S / "overlays" / "production")


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


@pytest.mark.parametrize("directory", ["base", "overlays/production"])
def test_every_manifest_is_valid_kubernetes(directory: str) -> None:
    docs = render(K8S / directory)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_schema_check_can_fail(production: list[dict[str, Any]]) -> None:
    deployment = copy.deepcopy(of_kind(production, "Deployment")["orders"])
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinessprobe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_a_deployment_with_probes_resources_and_autoscaler_per_process(
        production: list[dict[str, Any]]) -> None:
    deployments = of_kind(production, "Deployment")
    autoscalers = of_kind(production, "HorizontalPodAutoscaler")
    assert set(deployments) == set(APP) | {"gateway"}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                            ("readinessProbe", "/readyz")):
            assert container[probe]["httpGet"]["path"] == path, (name, probe)
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
        assert "memory" in container["resources"]["limits"], name
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert re.fullmatch(r"registry\.example\.com/clientela:\d+\.\d+\.\d+",
                            container["image"]), container["image"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        if name in APP:  # the nameko class the compose file runs too
            assert container["command"][-1] == APP[name].class_path
            assert (REPO / (APP[name].class_path.split(":")[0].replace(".", "/") + ".py")
                    ).is_file()
        hpa = autoscalers[name]["spec"]
        assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                         "name": name}
        assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]


def _mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity[:-len(suffix)]) * factor
    return float(quantity) / 2**20  # plain bytes


MEMORY = json.loads((REPO / "deploy" / "memory-peaks.json").read_text())


def _memory_shortfalls(deployments: dict[str, dict[str, Any]]) -> list[str]:
    """Where a memory limit is below the headroom times the peak measured for that process
    (deploy/memory-peaks.json, from the benchmarks); a pod of several processes (gunicorn's
    workers) must hold each of them. And a request above its limit."""
    problems = []
    for name, peak in MEMORY["peaks_mib"].items():
        [container] = deployments[name]["spec"]["template"]["spec"]["containers"]
        limit = _mebibytes(container["resources"]["limits"]["memory"])
        needed = peak["mib"] * MEMORY["headroom"] * MEMORY["pod_processes"].get(name, 1)
        if limit < needed:
            problems.append(f"{name}: limit {limit:.0f} MiB < {needed:.0f} MiB needed")
        if _mebibytes(container["resources"]["requests"]["memory"]) > limit:
            problems.append(f"{name}: request above limit")
    return problems


def test_memory_limits_hold_the_measured_peaks(production: list[dict[str, Any]]) -> None:
    assert _memory_shortfalls(of_kind(production, "Deployment")) == []


def test_the_memory_check_can_fail(production: list[dict[str, Any]]) -> None:
    deployments = copy.deepcopy(of_kind(production, "Deployment"))
    [container] = deployments["identity"]["spec"]["template"]["spec"]["containers"]
    container["resources"]["limits"]["memory"] = "200Mi"  # below 1.5 x the login burst's peak
    container["resources"]["requests"]["memory"] = "160Mi"
    assert _memory_shortfalls(deployments) == ["identity: limit 200 MiB < 286 MiB needed"]


def test_rabbitmq_and_postgresql_are_external_and_configured_by_secret(
        production: list[dict[str, Any]]) -> None:
    names = " ".join(doc["metadata"]["name"] for doc in production)
    assert not re.search(r"rabbit|postgres|redis", names)
    example = (K8S / "secrets.example.env").read_text()
    for variable in ["AMQP_URI", "REDIS_URL", "SMTP_URL",
                     *(info.url_env for info in SERVICES)]:
        assert re.search(rf"^{variable}=", example, re.M), variable
    for info in SERVICES:  # one database per service
        assert re.search(rf"^{info.url_env}=\S+/{info.name}$", example, re.M)
    config = of_kind(production, "ConfigMap")["clientela-config"]["data"]
    for deployment in of_kind(production, "Deployment").values():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        sources = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
        assert sources == {"clientela-config", "clientela-secrets"}
    assert config["JWT_PRIVATE_KEY_FILE"].startswith("/etc/clientela/keys/")


def test_migrations_run_as_a_job(production: list[dict[str, Any]]) -> None:
    job = of_kind(production, "Job")["clientela-migrate"]
    command = job["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert "clientela migrate" in command and "clientela topology" in command
    assert all(doc["metadata"].get("namespace") == "clientela" for doc in production
               if doc["kind"] != "Namespace")
