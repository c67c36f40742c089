"""Which problem codes each RPC can answer, found by reading the services' code, written into
their contracts (``RPC_ERRORS`` in messaging/contracts/<service>.py) for the gateway's
OpenAPI to list per route. A test runs ``--check``: a new code or a new call that can raise
one fails until the catalogue is regenerated.

    python -m ops.error_catalogue           # rewrite the catalogues
    python -m ops.error_catalogue --check   # exit 1 if one is out of date
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("identity", "customers", "orders", "notifications")
BEGIN = "# --- RPC_ERRORS: held to the code by a test; python -m ops.error_catalogue rewrites it"
END = "# --- end of RPC_ERRORS ---"


def _enum_values(service: str) -> dict[str, str]:
    """NAME -> code of the service's catalogue (its contract's *Error enum)."""
    tree = ast.parse((ROOT / "messaging" / "contracts" / f"{service}.py").read_text())
    values = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
            for item in node.body:
                if isinstance(item, ast.Assign) and isinstance(item.value, ast.Constant):
                    values[f"{node.name}.{item.targets[0].id}"] = item.value.value
    return values


def rpc_errors(service: str) -> dict[str, list[str]]:
    """RPC name -> the codes its use case (and everything it calls) can raise."""
    codes_of = _enum_values(service)
    modules = {path.stem: ast.parse(path.read_text())
               for path in sorted((ROOT / "services" / service).glob("*.py"))}
    functions: dict[tuple[str, str], ast.AST] = {}
    constants: dict[tuple[str, str], set[str]] = {}  # module-level ServiceError objects
    imports: dict[str, dict[str, tuple[str, str | None]]] = {}
    for module, tree in modules.items():
        imports[module] = {}
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                functions[(module, node.name)] = node
            elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                constants[(module, node.targets[0].id)] = _direct_codes(node, codes_of)
            elif isinstance(node, ast.ImportFrom) and node.module == f"services.{service}":
                for alias in node.names:  # a module of the service
                    imports[module][alias.asname or alias.name] = (alias.name, None)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    f"services.{service}."):
                source = node.module.rsplit(".", 1)[1]
                for alias in node.names:  # a name from a module of the service
                    imports[module][alias.asname or alias.name] = (source, alias.name)

    memo: dict[tuple[str, str], set[str]] = {}

    def reachable(module: str, node: ast.AST, seen: set[tuple[str, str]]) -> set[str]:
        found = set(_direct_codes(node, codes_of))
        for sub in ast.walk(node):
            target = None
            if isinstance(sub, ast.Name):
                if (module, sub.id) in functions:
                    target = (module, sub.id)
                elif (module, sub.id) in constants:
                    found |= constants[(module, sub.id)]
                elif sub.id in imports[module] and imports[module][sub.id][1]:
                    source, name = imports[module][sub.id]
                    target = (source, name)
                    found |= constants.get(target, set())
            elif isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) \
                    and sub.value.id in imports[module] and imports[module][sub.value.id][1] \
                    is None:
                source = imports[module][sub.value.id][0]
                target = (source, sub.attr)
                found |= constants.get(target, set())
            if target in functions and target not in seen:
                seen.add(target)
                if target not in memo:
                    memo[target] = reachable(target[0], functions[target], seen)
                found |= memo[target]
        return found

    answers = {}
    for node in ast.walk(modules["service"]):
        if isinstance(node, ast.FunctionDef) and any(
                isinstance(d, ast.Name) and d.id == "rpc" for d in node.decorator_list):
            answers[node.name] = sorted(reachable("service", node, set()))
    return dict(sorted(answers.items()))


def _direct_codes(node: ast.AST, codes_of: dict[str, str]) -> set[str]:
    found = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name):
            code = codes_of.get(f"{sub.value.id}.{sub.attr}")
            if code:
                found.add(code)
        elif isinstance(sub, ast.Name) and sub.id == "VALIDATION_FAILED":
            found.add("validation_failed")
        elif isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) \
                and sub.func.id == "load_or_raise":
            found.add("validation_failed")
    return found


def render(errors: dict[str, list[str]]) -> str:
    lines = [BEGIN, "RPC_ERRORS: dict[str, tuple[str, ...]] = {"]
    for rpc, codes in errors.items():
        entry = f'    "{rpc}": (' + "".join(f'"{code}", ' for code in codes).rstrip(" ")
        entry += "),"
        if len(entry) > 100:
            entry = f'    "{rpc}": (\n' + "".join(
                f'        "{code}",\n' for code in codes) + "    ),"
        lines.append(entry)
    lines += ["}", END]
    return "\n".join(lines) + "\n"


def updated(service: str) -> tuple[Path, str, str]:
    path = ROOT / "messaging" / "contracts" / f"{service}.py"
    text = path.read_text()
    block = render(rpc_errors(service))
    if BEGIN in text:
        new = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n", lambda _: block,
                     text, flags=re.S)
    else:
        new = text.rstrip() + "\n\n\n" + block
    return path, text, new


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.error_catalogue",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="only check that every catalogue is up to date (exit 1 if not)")
    args = parser.parse_args(argv)
    stale = []
    for service in SERVICES:
        path, old, new = updated(service)
        if old != new:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print("out of date (run python -m ops.error_catalogue): "
              + ", ".join(map(str, stale)), file=sys.stderr)
        return 1
    print("updated: " + ", ".join(map(str, stale)) if stale else "up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
