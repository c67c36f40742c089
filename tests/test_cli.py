"""The operator's CLI: help everywhere, and a clear way out when the broker is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.infra import free_port

CLIENTELA = str(Path(sys.executable).parent / "clientela")


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLIENTELA, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONWARNINGS": "ignore", **env})


@pytest.mark.parametrize("command", [[], ["check"], ["migrate"], ["topology"], ["seed-demo"],
                                     ["dkim-keygen"], ["create-staff"], ["ensure-owner"]])
def test_every_command_has_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0
    assert "usage: clientela" in result.stdout


def test_check_says_how_to_start_a_missing_rabbitmq() -> None:
    result = run("check", AMQP_URI=f"amqp://guest:secret@127.0.0.1:{free_port()}/")
    assert result.returncode == 1
    assert "RabbitMQ is not reachable" in result.stderr
    assert "rabbitmq-server" in result.stderr and "docker run" in result.stderr
    assert "secret" not in result.stderr  # the password is not echoed


def test_check_says_how_to_start_a_missing_postgres() -> None:
    url = f"postgresql+psycopg2://postgres:secret@127.0.0.1:{free_port()}/x"
    result = run("check", "--postgres", url)
    assert result.returncode == 1
    assert "PostgreSQL is not reachable" in result.stderr and "secret" not in result.stderr


def test_staff_passwords_from_the_environment_or_a_pipe_and_a_refused_owner_password(
        tmp_path: Path) -> None:
    env = {"CLIENTELA_VAR_DIR": str(tmp_path), "PYTHONWARNINGS": "default",
           "IDENTITY_DATABASE_URL": f"sqlite:///{tmp_path / 'identity.db'}"}
    assert run("migrate", "identity", **env).returncode == 0
    weak = run("ensure-owner", **env, OWNER_PASSWORD="short")
    assert weak.returncode == 1
    assert weak.stderr.count("\n") == 1 and "Traceback" not in weak.stderr
    assert "OWNER_PASSWORD" in weak.stderr and "at least 8 characters" in weak.stderr
    from_env = run("create-staff", "ana@shop.test", **env,
                   STAFF_PASSWORD="a long enough secret 1")
    assert from_env.returncode == 0, from_env.stderr
    piped = subprocess.run([CLIENTELA, "create-staff", "bo@shop.test"], input="another "
                           "long secret 2\n", capture_output=True, text=True, timeout=60,
                           env={**os.environ, **env})
    assert piped.returncode == 0, piped.stderr
    assert "GetPassWarning" not in piped.stderr and "Warning" not in piped.stderr
