"""The gateway against its own OpenAPI document, fuzzed by schemathesis: no server errors,
and every response (success or problem) matches what the document promises."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from harness.system import OWNER_EMAIL, OWNER_PASSWORD, System

PASSWORD = "contract test passphrase"
# Per operation and mode: enough to find shape bugs, quick enough for make test; raise it
# (CONTRACT_EXAMPLES=200) for a deeper hunt.
EXAMPLES = int(os.environ.get("CONTRACT_EXAMPLES", "10"))


@pytest.fixture(scope="module")
def tokens(system: System) -> dict[str, str]:
    owner = requests.post(system.api("/admin/auth/login"), timeout=10, json={
        "email": OWNER_EMAIL, "password": OWNER_PASSWORD}).json()["access_token"]
    requests.put(system.api("/admin/settings"), headers={"Authorization": f"Bearer {owner}"},
                 json={"customer_accounts": "optional"}, timeout=10)
    time.sleep(1.2)  # the gateway's settings cache
    requests.post(system.api("/customers"), json={"email": "fuzz@example.com",
                                                  "password": PASSWORD}, timeout=10)
    customer = requests.post(system.api("/auth/login"), timeout=10, json={
        "email": "fuzz@example.com", "password": PASSWORD}).json()["access_token"]
    return {"owner": owner, "customer": customer}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_keeps_its_promises(system: System, tokens: dict[str, str],
                                            mode: GenerationMode) -> None:
    """Valid requests (positive) and invalid ones (negative) for every documented operation.
    Failures are collected across operations, so one run names them all."""
    api = schemathesis.openapi.from_url(f"{system.url}/openapi.json")
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance]
    failures: list[str] = []
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 30

    def check(case: Any) -> None:
        role = "owner" if case.operation.path.startswith("/api/v1/admin") else "customer"
        headers = {"Authorization": f"Bearer {tokens[role]}",
                   # fuzzing is not an attack: keep the per-address limits out of the way
                   "X-Forwarded-For": "127.0.0.1"}
        response = case.call(base_url=system.url, headers=headers, timeout=30)
        case.validate_response(response, checks=checks)

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def exercise(case: Any) -> None:
            check(case)

        try:
            try:
                exercise()
            except Unsatisfiable:  # nothing to vary (no inputs), or nothing to make invalid
                if mode is GenerationMode.POSITIVE:
                    check(operation.Case())
        except Exception as exc:  # collect, report every failing operation at the end
            failures.append(f"{operation.method.upper()} {operation.path}: "
                            f"{str(exc).strip()[:1500]}")
    assert not failures, "\n\n".join(failures)
