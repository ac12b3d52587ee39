"""A project plan as data: :class:`Step`, :class:`ProjectKind` and the checks that make one runnable.

A kind is a small DAG of steps. Building one validates it (unknown dependency, cycle, duplicate
id, bad file or glob → :class:`PlanError`), so a registered kind can always run. The registry
and the built-in kinds live in :mod:`polaris_jupyter.tasks.project_kinds`.

A step may say which files it plans: ``files`` pins its writeFile to those paths (each is
promised), ``expects`` are globs each of which some file must match when the project is
verified (``src/*/__init__.py``). A ``verify`` step checks every promise of the plan plus the
syntax of the project's config and Python files (``generate_verify``).
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
from polaris_jupyter.tools.globs import compile_path_glob
from polaris_jupyter.tools.sandbox import check_path_text

__all__ = ["FORCEABLE_TOOLS", "PlanError", "ProjectKind", "Step", "StepAction"]

#: Tools a step may force as its first call (the generator only hands out the file tools).
FORCEABLE_TOOLS = ("readFile", "writeFile", "deleteFile", "listFiles", "getProjectStructure")
MAX_MODEL_STEPS = 50
MAX_PLAN_STEPS = 50
MAX_PROMPT_CHARS = 20_000
#: Paths one step may pin its writeFile to.
MAX_STEP_FILES = 20
#: Globs one step may promise.
MAX_STEP_EXPECTS = 20
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class PlanError(InvalidInput):
    """A project kind that cannot run: bad ids, unknown dependencies, a cycle."""


class StepAction(str, enum.Enum):
    """What a step does: ask the model with the file tools, check the input (no model), or
    verify the project against the plan's promises (the model, given a prompt, first reviews
    and fixes what the check found; the step fails with the reasons if problems remain)."""

    MODEL = "model"
    VALIDATE = "validate"
    VERIFY = "verify"


@dataclass(frozen=True)
class Step:
    """One step of a plan.

    ``prompt`` is a template: ``$description``, ``$title`` (the kind's), ``$folder`` (the project
    folder as the step's tools see it, i.e. ``.``: the tools are rooted there, so ``$folder/main.py``
    and ``main.py`` name the same file) and ``$folder_name`` (its path in the workspace, for prose).
    ``first_tool`` is forced on the step's first model call; ``min_files`` is how many files the
    step must write to count as done (0 for checking steps such as verify; all of ``files`` when
    the step pins them). ``files``, when given, are the only paths the step's writeFile may write
    (the tool schema lists them, so a grammar-constrained local model cannot stray, and other
    calls are refused). ``expects`` are globs over the project folder's paths (``README.md``,
    ``src/*/__init__.py``; ``*`` stays within a folder, ``**`` spans folders) that the step
    promises: a verify step fails unless each matches at least one file.
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
    expects: tuple[str, ...] = ()

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
        if self.action is StepAction.VERIFY and not self.asks_model:
            object.__setattr__(self, "first_tool", None)  # a check without a prompt asks no model
        if self.asks_model:
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
        object.__setattr__(self, "expects", _check_expects(self.id, self.expects))
        if self.min_files is None:
            wants_files = self.action is StepAction.MODEL and self.first_tool == "writeFile"
            object.__setattr__(self, "min_files", (len(files) or 1) if wants_files else 0)
        elif not isinstance(self.min_files, int) or self.min_files < 0:
            raise PlanError(f"step {self.id!r}: min_files must be a non-negative integer")

    @property
    def required_files(self) -> int:
        return int(self.min_files or 0)

    @property
    def asks_model(self) -> bool:
        """Model steps, and verify steps with a prompt (the model reviews before the check)."""
        if self.action is StepAction.VERIFY:
            return isinstance(self.prompt, str) and bool(self.prompt.strip())
        return self.action is StepAction.MODEL

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
            "maxModelSteps": self.max_model_steps if self.asks_model else 0,
            "firstTool": self.first_tool if self.asks_model else None,
        }
        if full:
            data["prompt"] = self.prompt
            data["minFiles"] = self.required_files
            if self.files:
                data["files"] = list(self.files)
            if self.expects:
                data["expects"] = list(self.expects)
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
                expects=data.get("expects") or (),
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
        return sum(1 for s in self.steps if s.asks_model)

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


def _check_expects(step_id: str, expects: Any) -> tuple[str, ...]:
    """Globs a step promises: relative to the project folder, no way up, valid glob syntax."""
    if isinstance(expects, str) or not isinstance(expects, Iterable):
        raise PlanError(f"step {step_id!r}: expects must be a list of globs, got {expects!r}")
    globs = tuple(expects)
    if len(globs) > MAX_STEP_EXPECTS:
        raise PlanError(f"step {step_id!r}: at most {MAX_STEP_EXPECTS} expected globs, got {len(globs)}")
    for glob in globs:
        if not isinstance(glob, str) or not glob.strip():
            raise PlanError(f"step {step_id!r}: each expected glob must be a non-empty string, got {glob!r}")
        try:
            compile_path_glob(glob)
        except ToolError as exc:
            raise PlanError(f"step {step_id!r}: expected glob {glob!r} is not usable ({exc})") from None
    return globs


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
