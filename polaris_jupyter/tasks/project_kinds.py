"""Project kinds: the registry of plans and the built-in ones (React + Vite, Python package).

A kind (:class:`~polaris_jupyter.tasks.project_plan.ProjectKind`) is a small DAG of steps; the
generator runs every step whose dependencies are finished, concurrently, so the plan itself
says what may overlap. A notebook can add kinds without touching the package::

    from polaris_jupyter.tasks.project_kinds import ProjectKind, Step, register_project_kind

    register_project_kind(ProjectKind("static-site", "Static site", steps=[
        Step("html", "Pages", "Write index.html and about.html.", expects=["index.html"]),
        Step("css", "Styles", "Write style.css for the pages.", depends_on=["html"]),
        Step("verify", "Verify", action="verify", depends_on=["html", "css"]),
    ]))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from polaris_jupyter.tasks.project_plan import PlanError, ProjectKind, Step, StepAction

__all__ = [
    "PYTHON_PACKAGE",
    "REACT_VITE",
    "PlanError",
    "ProjectKind",
    "Step",
    "StepAction",
    "get_project_kind",
    "is_builtin",
    "project_kinds",
    "register_project_kind",
    "unregister_project_kind",
]


# -- the registry -------------------------------------------------------------------------------

_KINDS: dict[str, ProjectKind] = {}
_BUILTIN: set[str] = set()


def register_project_kind(kind: ProjectKind | Mapping[str, Any], *, replace: bool = False) -> ProjectKind:
    """Add a kind (a :class:`ProjectKind` or its JSON form). An existing id needs ``replace=True``."""
    if not isinstance(kind, ProjectKind):
        kind = ProjectKind.from_json(kind)
    if kind.id in _KINDS and not replace:
        raise PlanError(f"a project kind {kind.id!r} exists already; pass replace=True to replace it")
    _KINDS[kind.id] = kind
    return kind


def unregister_project_kind(kind_id: str) -> None:
    """Remove a kind added with :func:`register_project_kind` (built-in kinds stay)."""
    if kind_id in _BUILTIN:
        raise PlanError(f"{kind_id!r} is a built-in kind and cannot be removed")
    _KINDS.pop(kind_id, None)


def get_project_kind(kind_id: Any) -> ProjectKind:
    """The kind with this id, or a :class:`PlanError` listing the known ones."""
    if isinstance(kind_id, str) and kind_id in _KINDS:
        return _KINDS[kind_id]
    raise PlanError(f"unknown project kind {kind_id!r}; known kinds: {', '.join(sorted(_KINDS))}")


def project_kinds() -> list[ProjectKind]:
    return list(_KINDS.values())


def is_builtin(kind_id: str) -> bool:
    return kind_id in _BUILTIN


def _builtin(kind: ProjectKind) -> ProjectKind:
    _KINDS[kind.id] = kind
    _BUILTIN.add(kind.id)
    return kind


_VALIDATE = Step("validate-input", "Validate input", action=StepAction.VALIDATE, first_tool=None)

REACT_VITE = _builtin(ProjectKind(
    "react-vite",
    "React + Vite app (TypeScript)",
    description="Polaris's plan: config, entry points, then components, hooks, types and utilities "
    "side by side, pages, README and a final check.",
    steps=(
        _VALIDATE,
        Step("config-files", "Config files",
             "Write the configuration files of a React 18 + Vite 5 + TypeScript app for: $description\n"
             "- package.json: name, private, type module, scripts dev/build/preview (build runs tsc -b && vite build), "
             "dependencies react and react-dom, devDependencies vite, @vitejs/plugin-react, typescript, @types/react, @types/react-dom\n"
             "- tsconfig.json: strict, target ES2020, module ESNext, moduleResolution bundler, jsx react-jsx, include src\n"
             "- vite.config.ts using @vitejs/plugin-react\n"
             "- index.html at the project root with <div id=\"root\"> and a module script /src/main.tsx",
             max_model_steps=8, depends_on=("validate-input",),
             expects=("package.json", "tsconfig.json", "vite.config.*", "index.html")),
        Step("source-structure", "Source structure",
             "Write the entry points: src/main.tsx (createRoot, StrictMode, imports ./index.css), src/App.tsx "
             "(the app shell with a header and a main area) and src/index.css (a small clean base style).",
             max_model_steps=8, depends_on=("config-files",),
             expects=("src/main.tsx", "src/App.tsx", "src/index.css")),
        Step("components", "Components",
             "Write the reusable UI components the app needs under src/components/ (one .tsx file each, typed "
             "props, no external UI library).",
             max_model_steps=8, depends_on=("source-structure",), expects=("src/components/*",)),
        Step("pages", "Pages",
             "Write the pages under src/pages/ (one .tsx file each) from the components, hooks, types and utilities "
             "listed below, and update src/App.tsx so it shows them (simple state-based navigation, no router package).",
             max_model_steps=8, depends_on=("components", "hooks", "types", "utilities"), expects=("src/pages/*",)),
        Step("hooks", "Hooks",
             "Write the custom React hooks the app needs under src/hooks/ (use*.ts files: state, effects, "
             "localStorage persistence where it helps).",
             max_model_steps=6, depends_on=("source-structure",), expects=("src/hooks/*",)),
        Step("types", "Types",
             "Write the shared TypeScript types and interfaces of the app's data under src/types/ (index.ts).",
             max_model_steps=4, depends_on=("source-structure",), expects=("src/types/*",)),
        Step("utilities", "Utilities",
             "Write small pure helper functions under src/utils/ (formatting, ids, sorting, validation as needed).",
             max_model_steps=6, depends_on=("source-structure",), expects=("src/utils/*",)),
        Step("readme", "README",
             "Write README.md: what the app does, how to install and run it (npm install, npm run dev), the "
             "scripts and the folder layout.",
             max_model_steps=4, depends_on=("source-structure",), expects=("README.md",)),
        Step("verify", "Verify",
             "Check the project: list the files, make sure every import points at a file that exists, "
             "package.json has the scripts and dependencies the code uses, and src/main.tsx renders App. "
             "Fix a file with writeFile only if something is missing or wrong; otherwise answer with a one-line summary.",
             action=StepAction.VERIFY, max_model_steps=4, first_tool="listFiles",
             depends_on=("config-files", "source-structure", "components", "pages", "hooks", "types", "utilities", "readme")),
    ),
))

PYTHON_PACKAGE = _builtin(ProjectKind(
    "python-package",
    "Python package",
    description="A pyproject-based package with modules, tests and a README.",
    steps=(
        _VALIDATE,
        Step("pyproject", "pyproject.toml",
             "Write pyproject.toml (PEP 621 metadata, hatchling build backend, requires-python >= 3.10, a "
             "test extra with pytest) and a .gitignore for a Python package that does: $description",
             max_model_steps=6, depends_on=("validate-input",), expects=("pyproject.toml",)),
        Step("package-modules", "Package modules",
             "Write the package under src/<package_name>/: __init__.py exporting the public API and the modules "
             "that implement it, with type hints and docstrings.",
             max_model_steps=8, depends_on=("pyproject",), expects=("src/*/__init__.py",)),
        Step("tests", "Tests",
             "Write pytest tests for the package under tests/ (test_*.py) covering the public API.",
             max_model_steps=6, depends_on=("package-modules",), expects=("tests/test_*.py",)),
        Step("readme", "README",
             "Write README.md: what the package does, installation (pip install -e .), a usage example and how "
             "to run the tests.",
             max_model_steps=4, depends_on=("package-modules",), expects=("README.md",)),
        Step("verify", "Verify",
             "Check the package: list the files, make sure the package name in pyproject.toml matches the folder "
             "under src/ and the tests import what exists. Fix a file with writeFile only if something is wrong; "
             "otherwise answer with a one-line summary.",
             action=StepAction.VERIFY, max_model_steps=4, first_tool="listFiles",
             depends_on=("pyproject", "package-modules", "tests", "readme")),
    ),
))
