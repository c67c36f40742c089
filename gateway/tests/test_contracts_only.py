"""The gateway depends on the services' contracts (messaging.contracts.<service>), never on
their code: a change inside a service cannot silently change the public API, and the
gateway's image needs no service's code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

GATEWAY = Path(__file__).resolve().parents[1]
ROOT = GATEWAY.parent


def test_nothing_in_the_gateway_imports_a_service() -> None:
    offenders = []
    for path in sorted(GATEWAY.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {module}"
                          for module in modules if module.split(".")[0] == "services"]
    assert offenders == []


def test_the_running_gateway_loads_no_service_module() -> None:
    """Nor through a contract: the contracts import no service either."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, gateway.app; print(sorted(m for m in sys.modules "
                               "if m.split('.')[0] == 'services'))"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    assert loaded == "[]"
