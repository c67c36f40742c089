"""Problem codes come from catalogues (each service's *Error enum in its contract), and the
codes each RPC can answer (RPC_ERRORS, which OpenAPI lists per route) are current."""

from __future__ import annotations

import ast
from pathlib import Path

from ops import error_catalogue

ROOT = Path(__file__).resolve().parents[1]


def test_every_rpcs_codes_are_current_in_its_contract() -> None:
    assert error_catalogue.main(["--check"]) == 0, "run: python -m ops.error_catalogue"


def test_no_service_raises_a_code_that_is_not_in_its_catalogue() -> None:
    """A ServiceError's code is a catalogue member (or validation_failed), never a string
    typed in place: a typo would be a new, undocumented code."""
    typed = []
    for path in sorted((ROOT / "services").glob("*/*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ServiceError" \
                    and node.args and isinstance(node.args[0], ast.Constant):
                typed.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.args[0].value}")
    assert typed == []


def test_the_catalogue_sees_through_helpers_and_the_domain() -> None:
    from messaging.contracts.orders import RPC_ERRORS

    assert {"quantity_limit", "out_of_stock", "idempotency_key_reused",
            "validation_failed"} <= set(RPC_ERRORS["place_order"])
    assert "illegal_transition" in RPC_ERRORS["change_order"]
