"""A service's settings as one typed, frozen object, read from the environment once when the
service starts (a nameko dependency), the way the gateway has its GatewayConfig.

Each field is read from the variable of its upper-cased name (or ``metadata={"env": ...}``)
and converted to the field's type; a value that does not convert stops the service at start
with the variable's name, not at the first request that needs it."""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import Any, TypeVar

from nameko.extensions import DependencyProvider

T = TypeVar("T")
TRUE, FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def env_name(field: Any) -> str:
    return field.metadata.get("env", field.name.upper())


def from_environment(cls: type[T], env: Mapping[str, str] | None = None) -> T:
    """``cls`` (a dataclass) with every field the environment sets; defaults for the rest."""
    assert is_dataclass(cls)
    env = os.environ if env is None else env
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in fields(cls):
        raw = env.get(env_name(field))
        if raw is None or raw.strip() == "":
            continue
        try:
            values[field.name] = _convert(hints[field.name], raw.strip())
        except ValueError:
            raise ValueError(f"{env_name(field)}={raw!r} is not a valid "
                             f"{getattr(hints[field.name], '__name__', hints[field.name])}"
                             ) from None
    return cls(**values)


def _convert(kind: Any, raw: str) -> Any:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):  # X | None
        return _convert(next(arg for arg in args if arg is not type(None)), raw)
    if origin is tuple:
        return tuple(_convert(args[0], part.strip()) for part in raw.split(",")
                     if part.strip())
    if kind is bool:
        if raw.lower() not in TRUE | FALSE:
            raise ValueError(raw)
        return raw.lower() in TRUE
    return kind(raw)


def describe(cls: type) -> list[tuple[str, Any]]:
    """(variable, default) for every setting: what an operator may set."""
    return [(env_name(field), field.default) for field in fields(cls)]


class ConfigProvider(DependencyProvider):
    """The service's config object (``self.config`` in entrypoints), read at container start."""

    def __init__(self, config_cls: type) -> None:
        self.config_cls = config_cls

    def setup(self) -> None:
        self.config = from_environment(self.config_cls)

    def get_dependency(self, worker_ctx: Any) -> Any:
        return self.config
