"""The generate-project task on a real engine + SQLite store, the real openai client over HTTP to
the scripted model server (one deterministic reply per step request)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from polaris_jupyter.jobs import Conflict, Event, InvalidInput, RunStatus, TriggerOptions
from polaris_jupyter.tasks.generate import (
    GENERATE_TASK_ID,
    follow_generation,
    resume_generation,
    start_generation,
)
from polaris_jupyter.tasks.generate_steps import step_id_of_request
from polaris_jupyter.tasks.project_kinds import (
    REACT_VITE,
    ProjectKind,
    Step,
    register_project_kind,
    unregister_project_kind,
)
from polaris_jupyter.testing import Response
from tests.generate.conftest import Env, finish, step_events

pytestmark = pytest.mark.asyncio
BEFORE_PAGES = ("config-files", "source-structure", "components", "hooks", "types", "utilities")


def seq_of(events: list[Event], step_id: str, state: str) -> int:
    return next(e.seq for e in events if e.type == "generation.step" and e.data["stepId"] == step_id
                and e.data["state"] == state)


async def test_react_vite_end_to_end_respects_dependencies(env: Env) -> None:
    run_id = await start_generation(env.runtime, "A todo list with due dates", path="todo")
    seen = [e async for e in follow_generation(env.runtime, run_id)]
    run = await finish(env.runtime, run_id)
    assert run.status is RunStatus.COMPLETED, run.error
    assert seen[-1].type == "run.status" and seen[-1].data["status"] == "COMPLETED"
    events = await step_events(env.runtime, run_id)
    for step in REACT_VITE.steps:  # every step started only after all of its dependencies finished
        started = seq_of(events, step.id, "started")
        assert all(seq_of(events, dep, "finished") < started for dep in step.depends_on), step.id
    model_steps = [s.id for s in REACT_VITE.steps if s.id != "validate-input"]
    assert dict(env.script.calls) == {s: 2 for s in model_steps}  # forced tool call, then a closing sentence
    files = sorted(p.relative_to(env.workspace).as_posix() for p in env.workspace.rglob("*") if p.is_file())
    planned = [f"todo/{p}" for s in model_steps if s != "verify" for p in env.script.paths_for(s)]
    assert files == run.output["files"] == sorted(planned) and len(files) == 13  # config, entry points, one per step
    assert all((env.workspace / f).stat().st_size > 200 for f in files)
    file_events = [e.data for e in events if e.type == "generation.file"]
    assert sorted(d["path"] for d in file_events) == files
    package = next(d for d in file_events if d["path"] == "todo/package.json")
    assert package["preview"] == "\n".join((env.workspace / "todo/package.json").read_text().splitlines()[:8])
    progress = [e.data for e in events if e.type == "generation.progress"]
    assert progress[-1] == {"done": 10, "total": 10}
    assert [p["done"] for p in progress] == sorted(p["done"] for p in progress)
    assert run.metadata["progress"]["done"] == 10 and set(run.metadata["progress"]["steps"].values()) == {"finished"}
    assert all(e.data.get("durationMs", 0) >= 0 for e in events if e.data.get("state") == "finished")
    # the pages step saw the files of its dependencies as a structure, not their contents
    pages_request = next(r for r in env.server.requests if step_id_of_request(r.body) == "pages")
    prompt = pages_request.body["messages"][1]["content"]
    assert "- src/components/TaskList.tsx (" in prompt and "- package.json (" in prompt
    assert "written by the scripted model" not in prompt
    assert pages_request.body["tool_choice"] == {"type": "function", "function": {"name": "writeFile"}}
    tools = {t["function"]["name"] for t in pages_request.body["tools"]}
    assert tools == {"readFile", "writeFile", "deleteFile", "listFiles", "getProjectStructure"}
    verify_request = next(r for r in env.server.requests if step_id_of_request(r.body) == "verify")
    assert verify_request.body["tool_choice"]["function"]["name"] == "listFiles"
    assert "The automatic check found no problems." in verify_request.body["messages"][1]["content"]


async def test_independent_steps_run_at_the_same_time(env: Env) -> None:
    run_id = await start_generation(env.runtime, "A notes app", path="notes")
    run = await finish(env.runtime, run_id)
    assert run.status is RunStatus.COMPLETED, run.error
    events = await step_events(env.runtime, run_id)
    side = ("components", "hooks", "types", "utilities")
    # by event order: each side step started before every other one finished
    for a in side:
        for b in side:
            assert seq_of(events, a, "started") < seq_of(events, b, "finished")
    # by the model server's clock: their model calls were in flight together
    first, last = env.script.started, env.script.finished
    assert max(first[s] for s in side) < min(last[s] for s in side)
    assert last["source-structure"] < min(first[s] for s in side)
    assert max(last[s] for s in side) < first["pages"]


async def test_failed_step_is_retried_without_calling_the_model_for_finished_steps(env: Env) -> None:
    env.script.fail_next("pages")
    run_id = await start_generation(env.runtime, "A recipe book", path="recipes")
    run = await finish(env.runtime, run_id)
    assert run.status is RunStatus.COMPLETED, run.error
    assert run.attempt_count == 2
    calls = dict(env.script.calls)
    assert all(calls[s] == 2 for s in BEFORE_PAGES), calls  # not asked again by the second attempt
    assert calls["pages"] == 3  # the failed request, then the forced write and the closing sentence
    events = await step_events(env.runtime, run_id)
    errors = [e.data for e in events if e.type == "generation.error"]
    assert len(errors) == 1 and errors[0]["stepId"] == "pages" and "step 'pages' (Pages) failed" in errors[0]["message"]
    skipped = {e.data["stepId"] for e in events if e.data.get("state") == "skipped"}
    assert skipped >= {"validate-input", *BEFORE_PAGES}
    assert set(run.output["resumedSteps"]) == skipped
    assert run.output["steps"]["pages"]["state"] == "finished"


async def test_failure_after_retries_fails_the_run_naming_the_step_then_resume(env: Env) -> None:
    env.script.fail_next("types")
    payload = {"description": "A weather dashboard", "kind": "react-vite", "path": "weather", "overwrite": False}
    handle = await env.runtime.engine.trigger(GENERATE_TASK_ID, payload, TriggerOptions(max_attempts=1))
    run = await finish(env.runtime, handle.id)
    assert run.status is RunStatus.FAILED
    assert run.error["message"].startswith("step 'types' (Types) failed: AllProvidersFailed")
    assert "injected model failure in step types" in run.error["message"]
    assert "step:pages" not in run.checkpoints  # nothing started after the failure
    # the siblings that were already running finished and were kept
    assert all(f"step:{s}" in run.checkpoints for s in ("components", "hooks", "utilities", "readme"))
    before = dict(env.script.calls)
    resumed_id = await resume_generation(env.runtime, handle.id)
    resumed = await finish(env.runtime, resumed_id)
    assert resumed.status is RunStatus.COMPLETED, resumed.error
    assert resumed.replayed_from == handle.id
    after = dict(env.script.calls)
    asked_again = {s for s in after if after[s] != before.get(s, 0)}
    assert asked_again == {"types", "pages", "verify"}
    assert len(resumed.output["files"]) == 13


async def test_restart_after_the_server_stops_mid_step_skips_finished_steps(env: Env) -> None:
    gate = asyncio.Event()
    script = env.script

    async def slow_pages(request: dict[str, Any]) -> Response:
        if step_id_of_request(request) == "pages" and not gate.is_set():
            gate.set()
            await asyncio.sleep(30)  # the runtime stops while this request is in flight
        return script(request)

    env.server.responder = slow_pages
    run_id = await start_generation(env.runtime, "A habit tracker", path="habits")
    await asyncio.wait_for(gate.wait(), 30)
    await env.runtime.stop()
    calls = dict(script.calls)
    restarted = await env.new_runtime()
    try:
        run = await finish(restarted, run_id)
        assert run.status is RunStatus.COMPLETED, run.error
        after = dict(script.calls)
        assert {s for s in after if after[s] != calls.get(s, 0)} == {"pages", "verify"}
        assert "pages" in run.output["steps"] and run.output["steps"]["pages"]["state"] == "finished"
        assert set(run.output["resumedSteps"]) == {"validate-input", *BEFORE_PAGES, "readme"}
    finally:
        await restarted.stop()


async def test_cancel_stops_every_running_step(env: Env) -> None:
    gate = asyncio.Event()
    script = env.script

    async def hang_side_steps(request: dict[str, Any]) -> Response:
        if step_id_of_request(request) in ("components", "hooks"):
            gate.set()
            await asyncio.sleep(30)
        return script(request)

    env.server.responder = hang_side_steps
    run_id = await start_generation(env.runtime, "A chess clock", path="clock")
    await asyncio.wait_for(gate.wait(), 30)
    run = await env.runtime.engine.cancel(run_id)
    assert run.status is RunStatus.CANCELED
    await asyncio.sleep(0)
    leftovers = [t for t in asyncio.all_tasks() if t.get_name().startswith("generate:")]
    assert leftovers == []
    assert "step:components" not in run.checkpoints


async def test_target_folder_rules(env: Env) -> None:
    runtime, ws = env.runtime, env.workspace
    outside = env.tmp / "outside"
    outside.mkdir()
    (ws / "link").symlink_to(outside)
    for path, message in [
        ("../escape", "outside the workspace"),
        (str(outside), "outside the workspace"),
        ("link/app", "outside the workspace"),
        (".", "not the workspace root itself"),
        (".git/app", ".git"),
        ("", "non-empty folder name"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            await start_generation(runtime, "x", path=path)
    (ws / "busy").mkdir()
    (ws / "busy" / "keep.txt").write_text("mine\n")
    with pytest.raises(Conflict, match=r"'busy' is not empty \(keep.txt\)"):
        await start_generation(runtime, "x", path="busy")
    (ws / "afile").write_text("x")
    with pytest.raises(Conflict, match="is a file"):
        await start_generation(runtime, "x", path="afile", overwrite=True)
    with pytest.raises(InvalidInput, match="unknown project kind 'vue'"):
        await start_generation(runtime, "x", kind="vue", path="new")
    with pytest.raises(InvalidInput, match="description"):
        await start_generation(runtime, "   ", path="new")
    assert env.server.requests == [] and not any(outside.iterdir())
    # an absolute path inside the workspace is fine, and overwrite lets a non-empty folder be used
    run_id = await start_generation(runtime, "x", path=str(ws / "busy"), overwrite=True)
    with pytest.raises(Conflict, match="already writing into 'busy'"):
        await start_generation(runtime, "y", path="busy", overwrite=True)
    run = await finish(runtime, run_id)
    assert run.status is RunStatus.COMPLETED, run.error
    assert run.payload["path"] == "busy" and (ws / "busy" / "keep.txt").read_text() == "mine\n"
    assert (ws / "busy" / "package.json").is_file()


async def test_model_cannot_write_outside_the_target_folder_and_revert_undoes_it(env: Env) -> None:
    kind = ProjectKind("one-file", "One file", (Step("write", "Write", "Write notes.txt", max_model_steps=4),))
    env.server.enqueue(
        Response.tool("writeFile", {"path": "../escape.txt", "content": "out\n"}),
        Response.tool("writeFile", {"path": "/etc/escape.txt", "content": "out\n"}),
        Response.tool("writeFile", {"path": "./notes.txt", "content": "in\n"}),  # "$folder/notes.txt"
        Response(text="done"),
    )
    run_id = await start_generation(env.runtime, "notes", kind=kind, path="inner")
    run = await finish(env.runtime, run_id)
    assert run.status is RunStatus.COMPLETED, run.error
    assert not (env.workspace / "escape.txt").exists() and not (env.tmp / "escape.txt").exists()
    assert (env.workspace / "inner" / "notes.txt").read_text() == "in\n"
    tool_replies = [m["content"] for m in env.server.requests[1].body["messages"] if m["role"] == "tool"]
    assert "outside" in tool_replies[0]
    assert run.output["files"] == ["inner/notes.txt"]
    assert run.payload["plan"]["id"] == "one-file"  # a kind given as an object travels with the run
    reverted = await env.runtime.journal.revert_run(env.workspace, run_id)
    assert "inner/notes.txt" in reverted and not (env.workspace / "inner").exists()


async def test_a_step_that_names_its_files_writes_only_those(env: Env) -> None:
    """``files`` pins writeFile: the schema the model gets lists them (a grammar-constrained
    local model cannot name another), and another path is refused so the model can correct."""
    kind = ProjectKind("pinned", "Pinned", (Step("readme", "README", "Write the README", max_model_steps=3, files=("README.md",)),))
    env.server.enqueue(
        Response.tool("writeFile", {"path": "your_file.txt", "content": "wrong file\n"}),
        Response.tool("writeFile", {"path": "./README.md", "content": "# Pinned\n"}),
        Response(text="done"),
    )
    run_id = await start_generation(env.runtime, "pinned files", kind=kind, path="pinned")
    run = await finish(env.runtime, run_id)
    assert run.status is RunStatus.COMPLETED, run.error
    assert run.output["files"] == ["pinned/README.md"] and not (env.workspace / "pinned" / "your_file.txt").exists()
    write = next(t for t in env.server.requests[0].body["tools"] if t["function"]["name"] == "writeFile")
    assert write["function"]["parameters"]["properties"]["path"]["enum"] == ["README.md"]
    refused = [m["content"] for m in env.server.requests[1].body["messages"] if m["role"] == "tool"]
    assert "this step writes README.md" in refused[0] and "your_file.txt" in refused[0]
    assert run.payload["plan"]["steps"][0]["files"] == ["README.md"]  # the plan travels with the run


async def test_custom_kind_registered_from_a_notebook(env: Env) -> None:
    kind = register_project_kind({
        "id": "docs-site",
        "title": "Docs site",
        "steps": [
            {"id": "outline", "title": "Outline", "prompt": "Write index.md for: $description"},
            {"id": "guide", "title": "Guide", "prompt": "Write guide.md", "dependsOn": ["outline"]},
            {"id": "faq", "title": "FAQ", "prompt": "Write faq.md", "dependsOn": ["outline"]},
        ],
    })
    try:
        env.script.files.update({"outline": "index.md", "guide": "docs/guide.md", "faq": "docs/faq.md"})
        run_id = await start_generation(env.runtime, "Docs for a CLI", kind=kind.id, path="docs")
        run = await finish(env.runtime, run_id)
        assert run.status is RunStatus.COMPLETED, run.error
        assert run.output["files"] == ["docs/docs/faq.md", "docs/docs/guide.md", "docs/index.md"]
        assert "Write index.md for: Docs for a CLI" in env.server.requests[0].body["messages"][1]["content"]
        events = await step_events(env.runtime, run_id)
        assert seq_of(events, "outline", "finished") < min(seq_of(events, s, "started") for s in ("guide", "faq"))
        assert run.payload["plan"]["steps"][1]["dependsOn"] == ["outline"]
    finally:
        unregister_project_kind("docs-site")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (["not", "an", "object"], "payload must be"),
        ({"description": "x", "kind": "react-vite", "path": "p", "overwrite": "yes"}, "overwrite must be"),
        ({"description": "x", "kind": "nope", "path": "p"}, "unknown project kind"),
        ({"description": "x", "kind": "k", "path": "p", "plan": {"id": "k", "title": "K", "steps": [
            {"id": "a", "prompt": "p", "dependsOn": ["b"]}]}}, "depends on 'b'"),
    ],
)
async def test_bad_payloads_fail_at_once_without_retries(env: Env, payload: Any, message: str) -> None:
    handle = await env.runtime.engine.trigger(GENERATE_TASK_ID, payload)
    run = await finish(env.runtime, handle.id)
    assert run.status is RunStatus.FAILED and run.attempt_count == 1
    assert message in run.error["message"]

