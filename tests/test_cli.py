"""The operator's CLI: help everywhere, and a clear way out when the broker is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.infra import free_port

CLIENTELA = str(Path(sys.executable).parent / "clientela")


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLIENTELA, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONWARNINGS": "ignore", **env})


@pytest.mark.parametrize("command", [[], ["check"], ["migrate"], ["topology"], ["seed-demo"]])
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
