"""OpenAPI 3 for the gateway, built from the routes themselves and marshmallow schemas.

A route says what it takes and returns with ``@document``; ``build_spec`` walks Flask's URL
map, so the document cannot list a route that does not exist or miss one that does (a test
checks that every /api route is documented).
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask
from marshmallow import Schema

from gateway import policy
from gateway.schemas import ProblemSchema
from messaging.contracts import customers, identity, notifications, orders

API_VERSION = "1.0.0"
_CONVERTER = re.compile(r"<(?:(?P<conv>[a-z]+)(?:\((?P<args>[^)]*)\))?:)?(?P<name>\w+)>")


def document(summary: str, *, tags: list[str], body: type[Schema] | Schema | None = None,
             responses: dict[int, type[Schema] | Schema | str | None] | None = None,
             auth: str | None = None, query: dict[str, dict[str, Any]] | None = None,
             headers: dict[str, dict[str, Any]] | None = None,
             description: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Describe a route. ``auth``: "customer", "staff", "optional-customer" or None."""

    def mark(view: Callable[..., Any]) -> Callable[..., Any]:
        view.__openapi__ = {  # type: ignore[attr-defined]
            "summary": summary, "tags": tags, "body": body, "responses": responses or {},
            "auth": auth, "query": query or {}, "headers": headers or {},
            "description": description or (view.__doc__ or "").strip() or None,
        }
        return view

    return mark


def _path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    parameters = []

    def convert(match: re.Match[str]) -> str:
        schema: dict[str, Any] = {"type": "string"}
        if match["conv"] == "any":
            schema["enum"] = [a.strip().strip("'\"") for a in match["args"].split(",")]
        parameters.append({"name": match["name"], "in": "path", "required": True,
                           "schema": schema})
        return "{" + match["name"] + "}"

    return _CONVERTER.sub(convert, rule), parameters


# Which codes each service's RPCs can answer (generated from the services' code into their
# contracts), and how a view's source names what it calls and raises.
RPC_ERRORS = {"identity": identity.RPC_ERRORS, "customers": customers.RPC_ERRORS,
              "orders": orders.RPC_ERRORS, "notifications": notifications.RPC_ERRORS}
_RPC_CALL = re.compile(r'rpc_call\(\s*"(\w+)",\s*"(\w+)"')
_PROBLEM = re.compile(r'Problem\(\s*\d+,\s*"(\w+)"')


def _sources(function: Callable[..., Any], seen: set[Any]) -> list[str]:
    """The function's source and that of the helpers and policy rules it calls (those of its
    own module and of gateway.policy, followed down)."""
    function = inspect.unwrap(function)
    source = inspect.getsource(function)
    found = [source]
    module = sys.modules[function.__module__]
    for name, helper in vars(module).items():
        if inspect.isfunction(helper) and helper not in seen \
                and helper.__module__ in (module.__name__, policy.__name__) \
                and re.search(rf"\b{name}\(", source):
            seen.add(helper)
            found += _sources(helper, seen)
    return found


def problem_codes(view: Callable[..., Any]) -> list[str]:
    """The problem codes a route can answer: its own, its helpers' and policy rules', and
    those of the RPCs it calls (each service's RPC_ERRORS). Not listed: the ones any route may
    answer (bad JSON, body too large, 401/403 for the token, 429, 503)."""
    codes: set[str] = set()
    for source in _sources(view, {inspect.unwrap(view)}):
        codes |= set(_PROBLEM.findall(source))
        for service, rpc in _RPC_CALL.findall(source):
            codes |= set(RPC_ERRORS[service].get(rpc, ()))
    return sorted(codes)


def schema_name(schema: type[Schema] | Schema) -> str:
    """A component's name: the class's without "Schema"; a partial instance (a PATCH body:
    nothing required) is a different shape, so it gets a name of its own."""
    cls = schema if isinstance(schema, type) else type(schema)
    name = cls.__name__.removesuffix("Schema") or cls.__name__
    return name + "Patch" if getattr(schema, "partial", False) else name


def build_spec(app: Flask) -> dict[str, Any]:
    spec = APISpec(
        title="Clientela API", version=API_VERSION, openapi_version="3.0.3",
        plugins=[MarshmallowPlugin(schema_name_resolver=schema_name)],
        info={"description": "Customer accounts and orders for online stores. Errors are "
                             "application/problem+json (RFC 9457)."},
    )
    spec.components.schema("Problem", schema=ProblemSchema)
    spec.components.security_scheme("customer", {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "Access token from /api/v1/auth/login (audience storefront)"})
    spec.components.security_scheme("staff", {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "Access token from /api/v1/admin/auth/login (audience admin)"})
    problem = {"description": "A problem (RFC 9457)", "content": {
        "application/problem+json": {"schema": "Problem"}}}

    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        meta = getattr(app.view_functions[rule.endpoint], "__openapi__", None)
        if meta is None:
            continue
        path, parameters = _path(rule.rule)
        for name, definition in meta["query"].items():
            parameters.append({"name": name, "in": "query", **definition})
        for name, definition in meta["headers"].items():
            parameters.append({"name": name, "in": "header", **definition})
        codes = problem_codes(app.view_functions[rule.endpoint])
        operation: dict[str, Any] = {
            "summary": meta["summary"], "tags": meta["tags"],
            "operationId": rule.endpoint.replace(".", "_"),
            "responses": {"default": {
                **problem, "x-problem-codes": codes,
                "description": problem["description"] + (
                    ": code one of " + ", ".join(codes) if codes else "")}},
        }
        if meta["description"]:
            operation["description"] = meta["description"]
        if parameters:
            operation["parameters"] = parameters
        if meta["body"] is not None:
            operation["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": meta["body"]}}}
        for status, schema in meta["responses"].items():
            if schema is None:
                response: dict[str, Any] = {"description": "No content"}
            elif isinstance(schema, str):  # a media type: a document, not JSON
                response = {"description": "Success", "content": {
                    schema: {"schema": {"type": "string"}}}}
            else:
                response = {"description": "Success",
                            "content": {"application/json": {"schema": schema}}}
            operation["responses"][str(status)] = response
        if meta["auth"] == "customer":
            operation["security"] = [{"customer": []}]
        elif meta["auth"] == "staff":
            operation["security"] = [{"staff": []}]
        elif meta["auth"] == "optional-customer":
            operation["security"] = [{"customer": []}, {}]
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        spec.path(path=path, operations={m.lower(): dict(operation) for m in methods})
    return spec.to_dict()
