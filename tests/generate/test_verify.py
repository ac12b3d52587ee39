"""The verify step checks what the kind promises: planned files, config files that parse, Python
that compiles, entry files. Unit checks on folders, then whole generations through the real
engine, store, agent loop and openai client against the scripted model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from polaris_jupyter.jobs import RunStatus, TriggerOptions
from polaris_jupyter.tasks.generate import GENERATE_TASK_ID, resume_generation, start_generation
from polaris_jupyter.tasks.generate_script import DEFAULT_FILES, ScriptedGeneration
from polaris_jupyter.tasks.generate_steps import step_id_of_request
from polaris_jupyter.tasks.generate_verify import check_project, strip_jsonc
from polaris_jupyter.tasks.project_kinds import PYTHON_PACKAGE, REACT_VITE, ProjectKind, Step, StepAction
from polaris_jupyter.testing import Response
from tests.generate.conftest import Env, finish, step_events

GOOD_PYPROJECT = '[project]\nname = "todo"\nversion = "0.1.0"\n'
BAD_PYPROJECT = '[project]\nname = "todo\nversion = 0.1.0\n'


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def _python_package(root: Path, **overrides: str) -> Path:
    files = {"pyproject.toml": GOOD_PYPROJECT, "src/todo/__init__.py": "from todo.core import add\n",
             "src/todo/core.py": "def add(a: int, b: int) -> int:\n    return a + b\n",
             "tests/test_core.py": "from todo.core import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n",
             "README.md": "# todo\n", ".gitignore": "__pycache__/\n"}
    files.update(overrides)
    return _tree(root, files)


def _messages(kind: ProjectKind, root: Path) -> list[str]:
    return [str(p) for p in check_project(kind, root)]


def test_a_good_python_package_passes(tmp_path: Path) -> None:
    assert _messages(PYTHON_PACKAGE, _python_package(tmp_path)) == []


def test_an_invalid_pyproject_and_python_that_does_not_compile_are_named(tmp_path: Path) -> None:
    root = _python_package(tmp_path, **{"pyproject.toml": BAD_PYPROJECT,
                                        "src/todo/core.py": "def add(a, b)\n    return a + b\n"})
    problems = _messages(PYTHON_PACKAGE, root)
    assert len(problems) == 2, problems
    assert problems[0].startswith("pyproject.toml: is not valid TOML: ") and "line 2" in problems[0]
    assert problems[1] == "src/todo/core.py: does not compile: expected ':' (line 1, column 14)"


def test_files_named_projects_instead_of_the_planned_ones_fail(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"Projects": "x\n", "projects": "y\n"})
    assert _messages(PYTHON_PACKAGE, root) == [
        "pyproject.toml: missing (step 'pyproject', pyproject.toml, promises this file)",
        "src/*/__init__.py: missing (step 'package-modules', Package modules, promises a file matching it)",
        "tests/test_*.py: missing (step 'tests', Tests, promises a file matching it)",
        "README.md: missing (step 'readme', README, promises this file)",
    ]


REACT_FILES = {
    "package.json": json.dumps({"name": "app", "private": True, "scripts": {"dev": "vite"}}),
    "tsconfig.json": '{\n  // strict mode\n  "compilerOptions": {"strict": true, /* bundler */ "jsx": "react-jsx",},\n'
                     '  "include": ["src", "a//b", "/*not a comment*/",],\n}\n',
    "vite.config.ts": "export default {}\n", "src/main.tsx": "x", "src/App.tsx": "x", "src/index.css": "x",
    "index.html": '<div id="root"></div><script type="module" src="/src/main.tsx"></script>'
                  '<script src="https://cdn.example/x.js"></script>',
    "src/components/List.tsx": "x", "src/pages/Home.tsx": "x", "src/hooks/useList.ts": "x",
    "src/types/index.ts": "x", "src/utils/format.ts": "x", "README.md": "# app\n",
}


def test_react_vite_entry_files_and_json_with_comments(tmp_path: Path) -> None:
    root = _tree(tmp_path / "ok", REACT_FILES)
    assert _messages(REACT_VITE, root) == []  # tsconfig.json's comments and trailing commas are fine, as for tsc
    broken = _tree(tmp_path / "broken", {**REACT_FILES, "package.json": "[1, 2]", "tsconfig.json": '{"a": }',
                                         "index.html": '<script type="module" src="/src/entry.tsx"></script>'})
    (broken / "src/main.tsx").unlink()
    assert _messages(REACT_VITE, broken) == [
        "src/main.tsx: missing (step 'source-structure', Source structure, promises this file)",
        "index.html: loads /src/entry.tsx, which does not exist",
        "package.json: must be a JSON object, not list",
        "tsconfig.json: is not valid JSON (comments allowed): Expecting value at line 1, column 7",
    ]


def test_strip_jsonc_keeps_strings_and_positions() -> None:
    text = '{"url": "http://x//y", "glob": "/*a*/", "list": [1, 2,], // end\n "o": {"k": 1,},}'
    assert json.loads(strip_jsonc(text)) == {"url": "http://x//y", "glob": "/*a*/", "list": [1, 2], "o": {"k": 1}}
    assert len(strip_jsonc(text)) == len(text)


def test_pinned_files_are_promised(tmp_path: Path) -> None:
    kind = ProjectKind("pinned", "Pinned", (
        Step("script", "Script", "Write them", files=("main.py", "cli.py")),
        Step("check", "Check", action=StepAction.VERIFY, depends_on=("script",)),
    ))
    assert kind.step("script").required_files == 2  # a step that pins files must write all of them
    assert kind.step("check").first_tool is None and not kind.step("check").asks_model
    assert _messages(kind, _tree(tmp_path, {"main.py": "print(1)\n"})) == [
        "cli.py: missing (step 'script', Script, plans this file)"]


# -- whole generations -----------------------------------------------------------------------


class BadPyproject(ScriptedGeneration):
    """Writes an invalid pyproject.toml; the verify step's model answers without fixing it."""

    def content_for(self, step_id: str, path: str) -> str:
        return BAD_PYPROJECT if path == "pyproject.toml" else super().content_for(step_id, path)


@pytest.mark.asyncio
async def test_invalid_pyproject_fails_the_verify_step_with_the_reason_and_resume_starts_there(env: Env) -> None:
    script = BadPyproject(tokens_per_file=40)
    env.server.responder = script
    payload = {"description": "A todo package", "kind": "python-package", "path": "todo", "overwrite": False}
    handle = await env.runtime.engine.trigger(GENERATE_TASK_ID, payload, TriggerOptions(max_attempts=2))
    run = await finish(env.runtime, handle.id)
    assert run.status is RunStatus.FAILED
    message = run.error["message"]
    assert message.startswith("step 'verify' (Verify) failed: StepError: the project does not hold what the "
                              "Python package plan promises (1 problem(s)):\n- pyproject.toml: is not valid TOML: ")
    assert message.endswith("Files in the project (4): README.md, pyproject.toml, src/package/__init__.py, "
                            "tests/test_package.py")
    # both attempts ran only the verify step again: every other step was a checkpoint
    assert dict(script.calls) == {"pyproject": 2, "package-modules": 2, "tests": 2, "readme": 2, "verify": 4}
    events = await step_events(env.runtime, handle.id)
    failed = [e.data for e in events if e.type == "generation.step" and e.data["state"] == "failed"]
    assert [f["stepId"] for f in failed] == ["verify", "verify"] and "is not valid TOML" in failed[0]["error"]
    assert "step:verify" not in run.checkpoints
    verify_prompt = next(r.body["messages"][1]["content"] for r in env.server.requests
                         if step_id_of_request(r.body) == "verify")
    assert "The automatic check found these problems; fix each of them with writeFile:\n- pyproject.toml: is not valid TOML" \
        in verify_prompt
    # the user fixes the file; resuming runs the verify step only, and it passes
    (env.workspace / "todo" / "pyproject.toml").write_text(GOOD_PYPROJECT)
    before = dict(script.calls)
    resumed = await finish(env.runtime, await resume_generation(env.runtime, handle.id))
    assert resumed.status is RunStatus.COMPLETED, resumed.error
    assert {s for s, n in script.calls.items() if n != before[s]} == {"verify"}


class FixingVerify(BadPyproject):
    """The verify step's model reads the problems it was given and rewrites the broken file."""

    def __call__(self, request: dict[str, Any]) -> Response:
        messages = request.get("messages") or []
        told = "is not valid TOML" in str(messages[1].get("content")) if len(messages) > 1 else False
        listed = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "tool")
        if step_id_of_request(request) == "verify" and told and listed == 1:
            self.calls["verify"] += 1
            return Response.tool("writeFile", {"path": "pyproject.toml", "content": GOOD_PYPROJECT})
        return super().__call__(request)


@pytest.mark.asyncio
async def test_the_verify_model_fixes_what_the_check_found(env: Env) -> None:
    script = FixingVerify(tokens_per_file=40)
    env.server.responder = script
    run = await finish(env.runtime, await start_generation(env.runtime, "A todo package", kind="python-package",
                                                           path="todo"))
    assert run.status is RunStatus.COMPLETED, run.error
    assert run.attempt_count == 1 and script.calls["verify"] == 3  # list, fix, answer
    assert (env.workspace / "todo" / "pyproject.toml").read_text() == GOOD_PYPROJECT


@pytest.mark.asyncio
async def test_good_generations_complete(env: Env) -> None:
    for kind in ("python-package", "react-vite"):
        run = await finish(env.runtime, await start_generation(env.runtime, "A todo app", kind=kind, path=kind))
        assert run.status is RunStatus.COMPLETED, run.error
        assert check_project(PYTHON_PACKAGE if kind == "python-package" else REACT_VITE, env.workspace / kind) == []


@pytest.mark.asyncio
async def test_files_named_projects_fail_the_generation(env: Env) -> None:
    script = ScriptedGeneration(tokens_per_file=40, files={**DEFAULT_FILES, "pyproject": "Projects",
                                                                 "package-modules": "projects"})
    env.server.responder = script
    payload = {"description": "A todo package", "kind": "python-package", "path": "junk", "overwrite": False}
    handle = await env.runtime.engine.trigger(GENERATE_TASK_ID, payload, TriggerOptions(max_attempts=1))
    run = await finish(env.runtime, handle.id)
    assert run.status is RunStatus.FAILED
    assert "- pyproject.toml: missing (step 'pyproject', pyproject.toml, promises this file)" in run.error["message"]
    assert "- src/*/__init__.py: missing" in run.error["message"]
    assert "Files in the project (4): Projects, README.md, projects, tests/test_package.py" in run.error["message"]
