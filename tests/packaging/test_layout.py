"""Checks of the package's shape: one contract per concept, no reaching into private modules."""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path

from polaris_jupyter.api import ROUTES, PolarisAPI, openapi_document

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "polaris_jupyter"


def _subpackage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_private_imports_across_subpackages() -> None:
    """``polaris_jupyter.a`` never imports ``polaris_jupyter.b._x`` or a ``_name`` from ``b``."""
    offences = []
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        here = _subpackage(module)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [(node.module, alias.name) for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [(alias.name, "") for alias in node.names]
            else:
                continue
            for target, name in targets:
                if not target.startswith("polaris_jupyter") or _subpackage(target) == here:
                    continue
                private_module = any(part.startswith("_") and part != "__init__" for part in target.split(".")[1:])
                if target == "polaris_jupyter._version":  # the package's own version file, not a subpackage
                    continue
                if private_module or name.startswith("_"):
                    offences.append(f"{module}: from {target} import {name}")
    assert not offences, "\n".join(offences)


def test_committed_openapi_document_is_current() -> None:
    """The TypeScript types are generated from labextension/openapi.json: it must be today's table.
    Regenerate with ``python -m polaris_jupyter.api labextension/openapi.json``."""
    committed = json.loads((ROOT / "labextension" / "openapi.json").read_text())
    assert committed == json.loads(json.dumps(openapi_document()))


def test_every_route_has_an_api_method_with_its_parameters() -> None:
    for route in ROUTES:
        if route.websocket:
            continue
        method = getattr(PolarisAPI, route.op)
        params = set(inspect.signature(method).parameters) - {"self"}
        expected = {p.arg for p in route.query} | {"".join("_" + c.lower() if c.isupper() else c for c in n) for n in route.path_params}
        if route.body is not None:
            expected.add("body")
        assert params == expected, (route.op, params, expected)


def test_every_operation_is_documented_once() -> None:
    doc = openapi_document()
    ops = [op["operationId"] for path in doc["paths"].values() for op in path.values()]
    assert sorted(ops) == sorted(r.op for r in ROUTES) and len(set(ops)) == len(ops)
    for route in ROUTES:
        assert route.path.startswith("/polaris/"), route.path


def test_readme_settings_table_is_generated_from_the_traits() -> None:
    """The README's settings table is PolarisConfig's help texts (``python -m
    polaris_jupyter.config_table README.md`` regenerates it)."""
    from polaris_jupyter.config_table import END, START, settings_table

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split(START, 1)[1].split(END, 1)[0].strip()
    assert table == settings_table()
