"""The services' shape (issue #21): service.py lists the API, the use-case modules beside it
do the work. Every name an entrypoint hands work to exists (a refactor that renames a function
fails here, not at a merchant's first click), and no service.py grows back past 400 lines."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPLIT = ("orders", "customers", "identity", "notifications")


@pytest.mark.parametrize("service", SPLIT)
def test_every_use_case_an_entrypoint_names_exists(service: str) -> None:
    missing = []
    for path in sorted((ROOT / "services" / service).glob("*.py")):
        tree = ast.parse(path.read_text())
        # the service's own modules this file imports (a local variable may share a name)
        imported = {alias.asname or alias.name for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.module == f"services.{service}"
                    for alias in node.names}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in imported):
                continue
            if not (ROOT / "services" / service / f"{node.value.id}.py").is_file():
                continue
            module = importlib.import_module(f"services.{service}.{node.value.id}")
            if not hasattr(module, node.attr):
                missing.append(f"{path.name}: {node.value.id}.{node.attr}")
    assert missing == []


@pytest.mark.parametrize("service", SPLIT)
def test_service_py_stays_a_list_of_entrypoints(service: str) -> None:
    lines = (ROOT / "services" / service / "service.py").read_text().count("\n")
    assert lines <= 400, f"services/{service}/service.py has {lines} lines"
