"""The verify step: does the generated project hold what its kind promised?

A generation used to COMPLETE with junk (two files named ``Projects`` and ``projects`` and no
``pyproject.toml``; an invalid ``pyproject.toml``) because its verify step only asked the model.
Now a ``verify`` step checks, without importing or running anything:

- every planned file exists: the files each step pins (``Step.files``) and at least one match
  of each glob a step ``expects`` (``pyproject.toml``, ``src/*/__init__.py``, ``index.html``);
- config files parse: ``*.toml`` (tomllib), ``*.json`` and ``*.ipynb`` (json), ``tsconfig*.json``
  / ``jsconfig*.json`` as the JSON-with-comments tsc reads; ``package.json`` is an object;
- Python files compile (``compile()`` of the source, never executed);
- a root ``index.html`` loads only local scripts that exist (Vite's ``/src/main.tsx``).

The model (when the step has a prompt) sees the problems found and may fix them; the check then
runs again and any problem left fails the step with every reason listed. The step is not
checkpointed, so a retry or a resumed run starts again from it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import warnings
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polaris_jupyter.tasks.generate_steps import StepError, StepOutcome, normalize_path
from polaris_jupyter.tasks.project_plan import ProjectKind, Step
from polaris_jupyter.tools.globs import compile_path_glob
from polaris_jupyter.tools.ignore import BUILTIN_IGNORED_DIRS
from polaris_jupyter.tools.tomlread import TOMLDecodeError, loads

__all__ = ["MAX_CHECKED_FILES", "Problem", "check_project", "describe_problems", "run_verify_step"]

MAX_CHECKED_FILES = 5000
MAX_PARSED_BYTES = 2_000_000
MAX_PROBLEMS_SHOWN = 20
MAX_FILES_NAMED = 12
_JSONC_NAMES = re.compile(r"^(tsconfig|jsconfig)(\.[\w.-]+)?\.json$")
_SCRIPT_SRC = re.compile(r"<script\b[^>]*?\bsrc\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)


@dataclass(frozen=True)
class Problem:
    """One broken promise: ``path`` relative to the project folder (or the missing glob)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def project_files(folder: Path) -> list[str]:
    """The project's files (relative POSIX paths, sorted), skipping VCS, dependency and build folders."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d not in BUILTIN_IGNORED_DIRS and not d.endswith(".egg-info")
                             and not os.path.islink(os.path.join(dirpath, d)))
        rel_dir = Path(dirpath).relative_to(folder).as_posix()
        for name in sorted(filenames):
            found.append(name if rel_dir == "." else f"{rel_dir}/{name}")
            if len(found) >= MAX_CHECKED_FILES:
                return found
    return found


def check_project(kind: ProjectKind, folder: Path) -> list[Problem]:
    """Every broken promise of ``kind`` in ``folder``, in plan order, then by path. Blocking."""
    files = project_files(folder)
    present = set(files)
    problems = list(_missing_files(kind, files, present))
    for rel in files:
        problem = _check_file(folder, rel, present)
        if problem is not None:
            problems.append(problem)
    return problems


def _missing_files(kind: ProjectKind, files: list[str], present: set[str]) -> Iterator[Problem]:
    for step in (kind.step(step_id) for step_id in kind.order):
        if step.files:
            missing = [f for f in step.files if normalize_path(f) not in present]
            needed = min(step.required_files or len(step.files), len(step.files))
            if len(step.files) - len(missing) < needed:
                for path in missing:
                    yield Problem(path, f"missing (step {step.id!r}, {step.title}, plans this file)")
        for glob in step.expects:
            matches = compile_path_glob(glob)
            if not any(matches(rel) for rel in files):
                what = "this file" if not any(c in glob for c in "*?[{") else "a file matching it"
                yield Problem(glob, f"missing (step {step.id!r}, {step.title}, promises {what})")


def _read_text(folder: Path, rel: str) -> str | Problem | None:
    """The file's text; None when too big to check; a Problem when it is not UTF-8."""
    path = folder / rel
    try:
        if os.path.islink(path) or path.stat().st_size > MAX_PARSED_BYTES:
            return None
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return Problem(rel, f"is not UTF-8 text (byte {exc.start})")
    except OSError as exc:
        return Problem(rel, f"cannot be read: {exc.strerror or exc}")


def _check_file(folder: Path, rel: str, present: set[str]) -> Problem | None:
    name = rel.rsplit("/", 1)[-1]
    suffix = os.path.splitext(name)[1].lower()
    if suffix not in (".toml", ".json", ".ipynb", ".py") and not (rel == "index.html"):
        return None
    text = _read_text(folder, rel)
    if not isinstance(text, str):
        return text
    if suffix == ".toml":
        try:
            loads(text)
        except TOMLDecodeError as exc:
            return Problem(rel, f"is not valid TOML: {exc}")
    elif suffix in (".json", ".ipynb"):
        jsonc = bool(_JSONC_NAMES.match(name)) or rel.startswith(".vscode/")
        try:
            data = json.loads(strip_jsonc(text) if jsonc else text)
        except json.JSONDecodeError as exc:
            kind = "JSON (comments allowed)" if jsonc else "JSON"
            return Problem(rel, f"is not valid {kind}: {exc.msg} at line {exc.lineno}, column {exc.colno}")
        if name == "package.json" and not isinstance(data, dict):
            return Problem(rel, f"must be a JSON object, not {type(data).__name__}")
    elif suffix == ".py":
        return _compile_problem(rel, text)
    else:
        return _index_html_problem(rel, text, present)
    return None


def _compile_problem(rel: str, text: str) -> Problem | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(text, rel, "exec", dont_inherit=True)
    except SyntaxError as exc:
        where = f" (line {exc.lineno}, column {exc.offset})" if exc.lineno else ""
        return Problem(rel, f"does not compile: {exc.msg}{where}")
    except (ValueError, RecursionError, MemoryError) as exc:
        return Problem(rel, f"does not compile: {exc}")
    return None


def _index_html_problem(rel: str, text: str, present: set[str]) -> Problem | None:
    """A root index.html's local module scripts must exist (``/x`` is the project root, as in Vite)."""
    missing = []
    for src in _SCRIPT_SRC.findall(text):
        if re.match(r"^([a-z][a-z0-9+.-]*:|//|%)", src, re.IGNORECASE):
            continue  # a URL or a template placeholder
        target = normalize_path(src.split("?", 1)[0].split("#", 1)[0])
        if target not in present and f"public/{target}" not in present:
            missing.append(src)
    if missing:
        return Problem(rel, f"loads {', '.join(missing)}, which does not exist")
    return None


def strip_jsonc(text: str) -> str:
    """JSON with comments and trailing commas (as tsc reads tsconfig.json) turned into JSON.

    Comments and trailing commas become spaces, so error positions stay where they were.
    """
    out = list(text)
    i, n = 0, len(text)
    in_string = False
    while i < n:
        char = text[i]
        if in_string:
            if char == "\\":
                i += 2
                continue
            if char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out[i:end] = " " * (end - i)
            i = end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out[i:end] = [c if c == "\n" else " " for c in text[i:end]]
            i = end
            continue
        i += 1
    blanked = "".join(out)
    in_string = False
    result = list(blanked)
    i = 0
    while i < n:
        char = blanked[i]
        if in_string:
            if char == "\\":
                i += 2
                continue
            in_string = char != '"'
        elif char == '"':
            in_string = True
        elif char == ",":
            j = i + 1
            while j < n and blanked[j].isspace():
                j += 1
            if j < n and blanked[j] in "}]":
                result[i] = " "
        i += 1
    return "".join(result)


def describe_problems(problems: list[Problem], files: list[str] | None = None) -> str:
    """The problems as a list a person (and the model) can act on, the first ones in full."""
    lines = [f"- {p}" for p in problems[:MAX_PROBLEMS_SHOWN]]
    if len(problems) > MAX_PROBLEMS_SHOWN:
        lines.append(f"- … and {len(problems) - MAX_PROBLEMS_SHOWN} more")
    if files is not None:
        named = ", ".join(files[:MAX_FILES_NAMED]) + (", …" if len(files) > MAX_FILES_NAMED else "")
        lines.append(f"Files in the project ({len(files)}): {named or 'none'}")
    return "\n".join(lines)


async def run_verify_step(
    step: Step,
    kind: ProjectKind,
    folder: Path,
    *,
    run_model: Callable[[str], Awaitable[StepOutcome]] | None,
    emit: Callable[[str, dict[str, Any]], None],
) -> StepOutcome:
    """Check the project; let the model fix what the check found; fail with what is left."""
    problems = await asyncio.to_thread(check_project, kind, folder)
    if problems:
        emit("generation.info", {"stepId": step.id, "message": f"Verify: {len(problems)} problem(s) found"
                                 + ("; asking the model to fix them." if run_model else ".")})
    outcome = StepOutcome()
    if run_model is not None:
        notes = ("The automatic check found these problems; fix each of them with writeFile:\n"
                 + describe_problems(problems)) if problems else "The automatic check found no problems."
        outcome = await run_model(notes)
        problems = await asyncio.to_thread(check_project, kind, folder)
    if problems:
        files = await asyncio.to_thread(project_files, folder)
        raise StepError(f"the project does not hold what the {kind.title} plan promises "
                        f"({len(problems)} problem(s)):\n{describe_problems(problems, files)}")
    return outcome
