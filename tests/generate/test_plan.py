"""Project kinds as data: the built-in plans, DAG validation, the registry, prompt helpers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from polaris_jupyter.jobs import InvalidInput
from polaris_jupyter.tasks.generate_steps import (
    FileInfo,
    build_messages,
    step_id_of_request,
    structure_summary,
)
from polaris_jupyter.tasks.generate_target import Target
from polaris_jupyter.tasks.project_kinds import (
    PYTHON_PACKAGE,
    REACT_VITE,
    PlanError,
    ProjectKind,
    Step,
    StepAction,
    get_project_kind,
    project_kinds,
    register_project_kind,
    unregister_project_kind,
)


@pytest.fixture
def cleanup_kinds() -> Iterator[list[str]]:
    added: list[str] = []
    yield added
    for kind_id in added:
        unregister_project_kind(kind_id)


def test_react_vite_is_polaris_plan() -> None:
    assert [s.id for s in REACT_VITE.steps] == [
        "validate-input", "config-files", "source-structure", "components", "pages", "hooks", "types",
        "utilities", "readme", "verify",
    ]
    validate = REACT_VITE.step("validate-input")
    assert validate.action is StepAction.VALIDATE and validate.required_files == 0
    model_steps = [s for s in REACT_VITE.steps if s.asks_model]
    assert [s.max_model_steps for s in model_steps] == [8, 8, 8, 8, 6, 4, 6, 4, 4]
    assert [s.first_tool for s in model_steps] == ["writeFile"] * 8 + ["listFiles"]
    verify = REACT_VITE.step("verify")
    assert verify.action is StepAction.VERIFY and verify.required_files == 0 and REACT_VITE.model_steps == 9
    # what the plan promises, so verify can check it: config, entry points, one file per folder
    assert REACT_VITE.step("config-files").expects == ("package.json", "tsconfig.json", "vite.config.*", "index.html")
    assert REACT_VITE.step("source-structure").expects == ("src/main.tsx", "src/App.tsx", "src/index.css")
    assert all(s.expects for s in model_steps[:-1])
    assert all(s.required_files == 1 for s in model_steps[:-1])
    for side in ("components", "hooks", "types", "utilities"):
        assert REACT_VITE.step(side).depends_on == ("source-structure",)
    assert set(REACT_VITE.step("verify").depends_on) == {s.id for s in REACT_VITE.steps} - {"verify", "validate-input"}
    order = REACT_VITE.order
    for step in REACT_VITE.steps:
        assert all(order.index(dep) < order.index(step.id) for dep in step.depends_on)
    assert "package.json" in REACT_VITE.step("config-files").prompt


def test_python_package_plan() -> None:
    assert [s.id for s in PYTHON_PACKAGE.steps] == ["validate-input", "pyproject", "package-modules", "tests", "readme", "verify"]
    assert PYTHON_PACKAGE.step("verify").first_tool == "listFiles"
    assert PYTHON_PACKAGE.step("verify").action is StepAction.VERIFY
    assert [PYTHON_PACKAGE.step(s).expects for s in ("pyproject", "package-modules", "tests", "readme")] == [
        ("pyproject.toml",), ("src/*/__init__.py",), ("tests/test_*.py",), ("README.md",)]
    assert PYTHON_PACKAGE.order.index("tests") > PYTHON_PACKAGE.order.index("package-modules")
    assert {k.id for k in project_kinds()} >= {"react-vite", "python-package"}


def test_unknown_dependency_names_the_step_and_the_dependency() -> None:
    with pytest.raises(PlanError) as info:
        ProjectKind("broken", "Broken", (Step("a", "A", "write a"), Step("b", "B", "write b", depends_on=["c"])))
    message = str(info.value)
    assert "'b' depends on 'c'" in message and "steps: a, b" in message
    assert isinstance(info.value, InvalidInput)  # the REST layer turns it into a 400


def test_cycle_is_reported_with_its_path() -> None:
    steps = (
        Step("a", "A", "write a", depends_on=["c"]),
        Step("b", "B", "write b", depends_on=["a"]),
        Step("c", "C", "write c", depends_on=["b"]),
        Step("d", "D", "write d"),
    )
    with pytest.raises(PlanError, match=r"cycle: a -> c -> b -> a"):
        ProjectKind("loop", "Loop", steps)
    with pytest.raises(PlanError, match="depends on itself"):
        ProjectKind("self", "Self", (Step("a", "A", "write a", depends_on=["a"]),))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Step("Bad Id", "T", "p"), "step id 'Bad Id'"),
        (lambda: Step("a", "", "p"), "needs a title"),
        (lambda: Step("a", "A", ""), "needs a prompt"),
        (lambda: Step("a", "A", "p", max_model_steps=0), "max_model_steps"),
        (lambda: Step("a", "A", "p", first_tool="executeCommand"), "first_tool 'executeCommand'"),
        (lambda: Step("a", "A", "p", depends_on="b"), "depends_on must be a list"),  # type: ignore[arg-type]
        (lambda: Step("a", "A", "p", action="shell"), "action 'shell'"),  # type: ignore[arg-type]
        (lambda: Step("a", "A", "p", files=("../up.txt",)), "not a relative path inside the project"),
        (lambda: Step("a", "A", "p", files=("/etc/x",)), "not a relative path inside the project"),
        (lambda: Step("a", "A", "p", files=("~/notes.md",)), "home directory"),
        (lambda: Step("a", "A", "p", files="README.md"), "files must be a list"),  # type: ignore[arg-type]
        (lambda: Step("a", "A", "p", files=tuple(f"f{i}" for i in range(21))), "at most 20 files"),
        (lambda: Step("a", "A", "p", expects=("../up.txt",)), "expected glob '../up.txt' is not usable"),
        (lambda: Step("a", "A", "p", expects=("/etc/*",)), "expected glob '/etc/\\*' is not usable"),
        (lambda: Step("a", "A", "p", expects=("",)), "each expected glob must be a non-empty string"),
        (lambda: Step("a", "A", "p", expects=("x\x00",)), "NUL byte"),
        (lambda: Step("a", "A", "p", expects="README.md"), "expects must be a list"),  # type: ignore[arg-type]
        (lambda: Step("a", "A", "p", expects=tuple(f"f{i}" for i in range(21))), "at most 20 expected globs"),
        (lambda: Step("a", "A", action="verify", max_model_steps=2), None),  # a check needs no prompt
        (lambda: ProjectKind("k", "K", ()), "has no steps"),
        (lambda: ProjectKind("k", "K", (Step("a", "A", "p"), Step("a", "A2", "p"))), "share the id 'a'"),
    ],
)
def test_bad_steps_and_kinds_are_refused(make: object, message: str | None) -> None:
    if message is None:
        make()  # type: ignore[operator]
        return
    with pytest.raises(PlanError, match=message):
        make()  # type: ignore[operator]


def test_register_custom_kind_from_json(cleanup_kinds: list[str]) -> None:
    spec = {
        "id": "static-site",
        "title": "Static site",
        "steps": [
            {"id": "html", "title": "Pages", "prompt": "Write index.html for: $description", "expects": ["index.html"]},
            {"id": "css", "title": "Styles", "prompt": "Write style.css", "dependsOn": ["html"], "maxModelSteps": 3},
            {"id": "check", "title": "Check", "prompt": "List the files", "dependsOn": ["html", "css"],
             "firstTool": "listFiles", "action": "verify"},
        ],
    }
    kind = register_project_kind(spec)
    cleanup_kinds.append(kind.id)
    assert get_project_kind("static-site") is kind
    assert kind.order == ("html", "css", "check")
    assert kind.step("css").max_model_steps == 3 and kind.step("check").required_files == 0
    assert kind.step("check").action is StepAction.VERIFY and kind.step("check").asks_model
    assert kind.step("html").expects == ("index.html",) and kind.to_json(full=True)["steps"][0]["expects"] == ["index.html"]
    with pytest.raises(PlanError, match="exists already"):
        register_project_kind(spec)
    replaced = register_project_kind(ProjectKind("static-site", "Static v2", (Step("html", "Pages", "Write it"),)), replace=True)
    assert get_project_kind("static-site").title == "Static v2" and replaced.model_steps == 1
    round_trip = ProjectKind.from_json(kind.to_json(full=True))
    assert round_trip == kind and round_trip.order == kind.order
    brief = kind.to_json()
    assert brief["steps"][1] == {"id": "css", "title": "Styles", "dependsOn": ["html"], "action": "model",
                                 "maxModelSteps": 3, "firstTool": "writeFile"}


def test_registry_errors() -> None:
    with pytest.raises(PlanError, match=r"unknown project kind 'nope'; known kinds: .*react-vite"):
        get_project_kind("nope")
    with pytest.raises(PlanError, match="built-in"):
        unregister_project_kind("react-vite")
    with pytest.raises(PlanError, match="depends on 'zzz'"):
        register_project_kind({"id": "x", "title": "X", "steps": [{"id": "a", "prompt": "p", "dependsOn": ["zzz"]}]})
    with pytest.raises(PlanError, match="list of steps"):
        register_project_kind({"id": "x", "title": "X", "steps": "a"})
    with pytest.raises(PlanError, match="unknown project kind"):
        get_project_kind("x")


def test_sequential_variant_chains_every_step() -> None:
    chained = REACT_VITE.sequential()
    assert chained.id == "react-vite-sequential"
    assert [s.id for s in chained.steps] == list(REACT_VITE.order)
    for previous, step in zip(chained.steps, chained.steps[1:]):
        assert step.depends_on == (previous.id,)
    assert chained.steps[0].depends_on == ()


def test_step_prompt_sees_structure_not_contents(tmp_path: Path) -> None:
    target = Target("apps/todo", tmp_path / "apps" / "todo", tmp_path)
    written = {"package.json": FileInfo("package.json", 24, 600), "src/App.tsx": FileInfo("src/App.tsx", 40, 1200)}
    messages = build_messages(REACT_VITE, REACT_VITE.step("pages"), "A todo list", target, written)
    user = messages[1]["content"]
    assert "A todo list" in user and "Current step: pages" in user
    assert "- package.json (24 lines)" in user and "- src/App.tsx (40 lines)" in user
    assert "React + Vite" in messages[0]["content"]
    assert step_id_of_request({"messages": messages}) == "pages"
    assert step_id_of_request({"messages": [{"role": "user", "content": "hi"}]}) is None
    assert structure_summary({}) == "Files written so far: none yet."
    config = build_messages(REACT_VITE, REACT_VITE.step("config-files"), "A todo list", target, {})[1]["content"]
    assert "app for: A todo list" in config  # $description filled into the template
    # tools are rooted at the project folder: $folder is "." there, $folder_name the workspace path
    custom = Step("script", "Script", "Write $folder/main.py (the project lives in $folder_name/)")
    kind = ProjectKind("one", "One", (custom,))
    prompt = build_messages(kind, custom, "x", target, {})[1]["content"]
    assert "Write ./main.py (the project lives in apps/todo/)" in prompt
