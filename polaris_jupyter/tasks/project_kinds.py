"""Project kinds as data: the steps of a generation, their prompts and their dependencies.

A kind is a small DAG of :class:`Step` objects. The generator runs every step whose
dependencies are finished, concurrently, so the plan itself says what may overlap. Kinds are
validated when built (unknown dependency, cycle, duplicate id → :class:`PlanError`) and kept in
a registry a notebook can extend without touching the package::

    from polaris_jupyter.tasks.project_kinds import ProjectKind, Step, register_project_kind

    register_project_kind(ProjectKind("static-site", "Static site", steps=[
        Step("html", "Pages", "Write index.html and about.html."),
        Step("css", "Styles", "Write style.css for the pages.", depends_on=["html"]),
    ]))
"""

from __future__ import annotations

import enum
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from polaris_jupyter.jobs import InvalidInput
from polaris_jupyter.tools.base import ToolError
from polaris_jupyter.tools.sandbox import check_path_text

__all__ = [
    "PYTHON_PACKAGE",
    "REACT_VITE",
    "PlanError",
    "ProjectKind",
    "Step",
    "StepAction",
    "get_project_kind",
    "project_kinds",
    "register_project_kind",
    "unregister_project_kind",
]

#: Tools a step may force as its first call (the generator only hands out the file tools).
FORCEABLE_TOOLS = ("readFile", "writeFile", "deleteFile", "listFiles", "getProjectStructure")
MAX_MODEL_STEPS = 50
MAX_PLAN_STEPS = 50
MAX_PROMPT_CHARS = 20_000
#: Paths one step may pin its writeFile to.
MAX_STEP_FILES = 20
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class PlanError(InvalidInput):
    """A project kind that cannot run: bad ids, unknown dependencies, a cycle."""


class StepAction(str, enum.Enum):
    """What a step does: ask the model with the file tools, or check the input (no model)."""

    MODEL = "model"
    VALIDATE = "validate"


@dataclass(frozen=True)
class Step:
    """One step of a plan.

    ``prompt`` is a template: ``$description``, ``$title`` (the kind's), ``$folder`` (the project
    folder as the step's tools see it, i.e. ``.``: the tools are rooted there, so ``$folder/main.py``
    and ``main.py`` name the same file) and ``$folder_name`` (its path in the workspace, for prose). ``first_tool`` is forced on the step's first model call; ``min_files`` is how
    many files the step must write to count as done (0 for checking steps such as verify).
    ``files``, when given, are the only paths the step's writeFile may write (the tool schema
    lists them, so a grammar-constrained local model cannot stray, and other calls are refused).
    """

    id: str
    title: str
    prompt: str = ""
    max_model_steps: int = 6
    first_tool: str | None = "writeFile"
    depends_on: tuple[str, ...] = ()
    action: StepAction = StepAction.MODEL
    min_files: int | None = None
    files: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID_RE.match(self.id):
            raise PlanError(f"step id {self.id!r} must be 1-64 characters of a-z, 0-9, '-' or '_', starting with a letter or digit")
        if not isinstance(self.title, str) or not self.title.strip():
            raise PlanError(f"step {self.id!r} needs a title")
        deps = self.depends_on
        if isinstance(deps, str) or not isinstance(deps, Iterable):
            raise PlanError(f"step {self.id!r}: depends_on must be a list of step ids, got {deps!r}")
        object.__setattr__(self, "depends_on", tuple(deps))
        try:
            object.__setattr__(self, "action", StepAction(self.action))
        except ValueError:
            allowed = ", ".join(a.value for a in StepAction)
            raise PlanError(f"step {self.id!r}: action {self.action!r} is not one of {allowed}") from None
        if self.action is StepAction.MODEL:
            if not isinstance(self.prompt, str) or not self.prompt.strip():
                raise PlanError(f"step {self.id!r} asks the model, so it needs a prompt")
            if len(self.prompt) > MAX_PROMPT_CHARS:
                raise PlanError(f"step {self.id!r}: the prompt is {len(self.prompt)} characters; the limit is {MAX_PROMPT_CHARS}")
            if not isinstance(self.max_model_steps, int) or not 1 <= self.max_model_steps <= MAX_MODEL_STEPS:
                raise PlanError(f"step {self.id!r}: max_model_steps must be an integer from 1 to {MAX_MODEL_STEPS}")
            if self.first_tool is not None and self.first_tool not in FORCEABLE_TOOLS:
                raise PlanError(f"step {self.id!r}: first_tool {self.first_tool!r} is not one of {', '.join(FORCEABLE_TOOLS)}")
        files = self.files
        if isinstance(files, str) or not isinstance(files, Iterable):
            raise PlanError(f"step {self.id!r}: files must be a list of paths, got {files!r}")
        files = tuple(files)
        for path in files:
            try:  # the workspace sandbox's own check of a path's text, and no way up
                if check_path_text(path) == "." or ".." in path.replace("\\", "/").split("/"):
                    raise ToolError("points at the project folder itself or above it")
            except ToolError as exc:
                raise PlanError(f"step {self.id!r}: {path!r} is not a relative path inside the project folder ({exc})") from None
        if len(files) > MAX_STEP_FILES:
            raise PlanError(f"step {self.id!r}: at most {MAX_STEP_FILES} files, got {len(files)}")
        object.__setattr__(self, "files", files)
        if self.min_files is None:
            wants_files = self.action is StepAction.MODEL and self.first_tool == "writeFile"
            object.__setattr__(self, "min_files", 1 if wants_files else 0)
        elif not isinstance(self.min_files, int) or self.min_files < 0:
            raise PlanError(f"step {self.id!r}: min_files must be a non-negative integer")

    @property
    def required_files(self) -> int:
        return int(self.min_files or 0)

    def render_prompt(self, values: Mapping[str, str]) -> str:
        """The prompt with ``$description`` / ``$title`` / ``$folder`` / ``$folder_name`` filled in
        (unknown ``$x`` kept)."""
        return string.Template(self.prompt).safe_substitute(values)

    def to_json(self, *, full: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "dependsOn": list(self.depends_on),
            "action": self.action.value,
            "maxModelSteps": self.max_model_steps if self.action is StepAction.MODEL else 0,
            "firstTool": self.first_tool if self.action is StepAction.MODEL else None,
        }
        if full:
            data["prompt"] = self.prompt
            data["minFiles"] = self.required_files
            if self.files:
                data["files"] = list(self.files)
        return data

    @classmethod
    def from_json(cls, data: Any) -> Step:
        if not isinstance(data, Mapping):
            raise PlanError(f"a step must be an object, got {type(data).__name__}")
        try:
            return cls(
                id=data.get("id"),  # type: ignore[arg-type]
                title=data.get("title") or data.get("id") or "",
                prompt=data.get("prompt", ""),
                max_model_steps=data.get("maxModelSteps", 6) or 6,
                first_tool=data.get("firstTool", "writeFile"),
                depends_on=data.get("dependsOn") or (),
                action=data.get("action", "model"),
                min_files=data.get("minFiles"),
                files=data.get("files") or (),
            )
        except TypeError as exc:
            raise PlanError(f"bad step {data.get('id')!r}: {exc}") from None


@dataclass(frozen=True)
class ProjectKind:
    """A named plan. Building one validates it, so a registered kind can always run."""

    id: str
    title: str
    steps: tuple[Step, ...]
    description: str = ""
    #: Steps in a dependency-respecting order (computed; plan order breaks ties).
    order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID_RE.match(self.id):
            raise PlanError(f"kind id {self.id!r} must be 1-64 characters of a-z, 0-9, '-' or '_'")
        steps = tuple(self.steps)
        if not steps:
            raise PlanError(f"kind {self.id!r} has no steps")
        if len(steps) > MAX_PLAN_STEPS:
            raise PlanError(f"kind {self.id!r} has {len(steps)} steps; the limit is {MAX_PLAN_STEPS}")
        if not all(isinstance(s, Step) for s in steps):
            raise PlanError(f"kind {self.id!r}: steps must be Step objects")
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "order", _topological_order(self.id, steps))

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    @property
    def model_steps(self) -> int:
        return sum(1 for s in self.steps if s.action is StepAction.MODEL)

    def sequential(self, kind_id: str | None = None) -> ProjectKind:
        """The same steps run strictly one after the other (each depends on the previous)."""
        by_id = {s.id: s for s in self.steps}
        chained: list[Step] = []
        previous: str | None = None
        for step_id in self.order:
            chained.append(replace(by_id[step_id], depends_on=(previous,) if previous else ()))
            previous = step_id
        return ProjectKind(kind_id or f"{self.id}-sequential", f"{self.title} (sequential)", tuple(chained), self.description)

    def to_json(self, *, full: bool = False) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "steps": [s.to_json(full=full) for s in self.steps],
        }

    @classmethod
    def from_json(cls, data: Any) -> ProjectKind:
        if not isinstance(data, Mapping):
            raise PlanError("a project kind must be an object with id, title and steps")
        raw_steps = data.get("steps")
        if not isinstance(raw_steps, list):
            raise PlanError("a project kind needs a list of steps")
        return cls(
            id=data.get("id"),  # type: ignore[arg-type]
            title=str(data.get("title") or data.get("id") or ""),
            steps=tuple(Step.from_json(s) for s in raw_steps),
            description=str(data.get("description") or ""),
        )


def _topological_order(kind_id: str, steps: tuple[Step, ...]) -> tuple[str, ...]:
    """Kahn's algorithm with plan order for ties; names the first problem it finds."""
    ids = [s.id for s in steps]
    seen: set[str] = set()
    for step_id in ids:
        if step_id in seen:
            raise PlanError(f"kind {kind_id!r}: two steps share the id {step_id!r}")
        seen.add(step_id)
    for s in steps:
        for dep in s.depends_on:
            if dep == s.id:
                raise PlanError(f"kind {kind_id!r}: step {s.id!r} depends on itself")
            if dep not in seen:
                raise PlanError(
                    f"kind {kind_id!r}: step {s.id!r} depends on {dep!r}, which is not a step of this kind "
                    f"(steps: {', '.join(ids)})"
                )
    remaining = {s.id: set(s.depends_on) for s in steps}
    order: list[str] = []
    while remaining:
        ready = [i for i in ids if i in remaining and not remaining[i]]
        if not ready:
            raise PlanError(f"kind {kind_id!r}: steps depend on each other in a cycle: {_find_cycle(remaining)}")
        for step_id in ready:
            order.append(step_id)
            del remaining[step_id]
        for deps in remaining.values():
            deps.difference_update(ready)
    return tuple(order)


def _find_cycle(remaining: dict[str, set[str]]) -> str:
    """One cycle among the steps left over by the sort, as ``a -> b -> a``."""
    start = next(iter(remaining))
    path: list[str] = []
    node = start
    while node not in path:
        path.append(node)
        node = next(d for d in sorted(remaining[node]) if d in remaining)
    cycle = [*path[path.index(node):], node]
    return " -> ".join(cycle)


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
             max_model_steps=8, depends_on=("validate-input",)),
        Step("source-structure", "Source structure",
             "Write the entry points: src/main.tsx (createRoot, StrictMode, imports ./index.css), src/App.tsx "
             "(the app shell with a header and a main area) and src/index.css (a small clean base style).",
             max_model_steps=8, depends_on=("config-files",)),
        Step("components", "Components",
             "Write the reusable UI components the app needs under src/components/ (one .tsx file each, typed "
             "props, no external UI library).",
             max_model_steps=8, depends_on=("source-structure",)),
        Step("pages", "Pages",
             "Write the pages under src/pages/ (one .tsx file each) from the components, hooks, types and utilities "
             "listed below, and update src/App.tsx so it shows them (simple state-based navigation, no router package).",
             max_model_steps=8, depends_on=("components", "hooks", "types", "utilities")),
        Step("hooks", "Hooks",
             "Write the custom React hooks the app needs under src/hooks/ (use*.ts files: state, effects, "
             "localStorage persistence where it helps).",
             max_model_steps=6, depends_on=("source-structure",)),
        Step("types", "Types",
             "Write the shared TypeScript types and interfaces of the app's data under src/types/ (index.ts).",
             max_model_steps=4, depends_on=("source-structure",)),
        Step("utilities", "Utilities",
             "Write small pure helper functions under src/utils/ (formatting, ids, sorting, validation as needed).",
             max_model_steps=6, depends_on=("source-structure",)),
        Step("readme", "README",
             "Write README.md: what the app does, how to install and run it (npm install, npm run dev), the "
             "scripts and the folder layout.",
             max_model_steps=4, depends_on=("source-structure",)),
        Step("verify", "Verify",
             "Check the project: list the files, make sure every import points at a file that exists, "
             "package.json has the scripts and dependencies the code uses, and src/main.tsx renders App. "
             "Fix a file with writeFile only if something is missing or wrong; otherwise answer with a one-line summary.",
             max_model_steps=2, first_tool="listFiles",
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
             max_model_steps=6, depends_on=("validate-input",)),
        Step("package-modules", "Package modules",
             "Write the package under src/<package_name>/: __init__.py exporting the public API and the modules "
             "that implement it, with type hints and docstrings.",
             max_model_steps=8, depends_on=("pyproject",)),
        Step("tests", "Tests",
             "Write pytest tests for the package under tests/ (test_*.py) covering the public API.",
             max_model_steps=6, depends_on=("package-modules",)),
        Step("readme", "README",
             "Write README.md: what the package does, installation (pip install -e .), a usage example and how "
             "to run the tests.",
             max_model_steps=4, depends_on=("package-modules",)),
        Step("verify", "Verify",
             "Check the package: list the files, make sure the package name in pyproject.toml matches the folder "
             "under src/ and the tests import what exists. Fix a file with writeFile only if something is wrong; "
             "otherwise answer with a one-line summary.",
             max_model_steps=2, first_tool="listFiles",
             depends_on=("pyproject", "package-modules", "tests", "readme")),
    ),
))
