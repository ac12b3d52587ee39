"""Project generation over REST on a real Jupyter server, the real openai client over HTTP to
the scripted model server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from polaris_jupyter.api import openapi_document
from polaris_jupyter.tasks.generate_script import ScriptedGeneration
from polaris_jupyter.tasks.generate_steps import step_id_of_request
from polaris_jupyter.testing import Response, ScriptedModelServer
from tests.live_server import LiveServer
from tests.server.test_runs_api import call, wait_status


@pytest.fixture
def script() -> ScriptedGeneration:
    return ScriptedGeneration(tokens_per_file=40)


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch, script: ScriptedGeneration) -> Iterator[ScriptedModelServer]:
    server = ScriptedModelServer.start_in_thread(responder=script)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_MODEL", "scripted-1")
    monkeypatch.setenv("POLARIS_PROVIDER", "openai")  # never fall back to a bundled model
    for name in ("CEREBRAS_API_KEY", "OPENROUTER_API_KEY", "POLARIS_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("POLARIS_LOCAL_BASE_URL", "http://127.0.0.1:9/v1")
    yield server
    server.stop()


async def test_project_kinds_are_listed(jp_fetch: Any, polaris: Any) -> None:
    status, body = await call(jp_fetch, "project-kinds")
    assert status == 200
    kinds = {k["id"]: k for k in body["kinds"]}
    react = kinds["react-vite"]
    assert [s["id"] for s in react["steps"]][:3] == ["validate-input", "config-files", "source-structure"]
    hooks = next(s for s in react["steps"] if s["id"] == "hooks")
    assert hooks["dependsOn"] == ["source-structure"] and hooks["maxModelSteps"] == 6
    assert "python-package" in kinds
    status, full = await call(jp_fetch, "project-kinds", "python-package")
    assert status == 200 and "pyproject.toml" in full["steps"][1]["prompt"]
    status, missing = await call(jp_fetch, "project-kinds", "cobol-app")
    assert status == 404 and "unknown project kind 'cobol-app'" in missing["message"]


async def test_generate_runs_end_to_end_and_revert_undoes_it(
    jp_fetch: Any, polaris: Any, model: ScriptedModelServer, script: ScriptedGeneration
) -> None:
    root = Path(polaris.root_dir)
    body = {"description": "A pomodoro timer", "kind": "react-vite", "path": "pomodoro"}
    status, accepted = await call(jp_fetch, "generate", method="POST", body=body)
    assert status == 202 and accepted["runId"].startswith("run_")
    run = await wait_status(jp_fetch, accepted["runId"], {"COMPLETED", "FAILED"}, timeout_s=60)
    assert run["status"] == "COMPLETED", run["error"]
    assert run["taskId"] == "generate-project" and "generation" in run["tags"]
    assert run["metadata"]["progress"]["done"] == run["metadata"]["progress"]["total"] == 10
    files = run["output"]["files"]
    assert len(files) == 13 and all((root / f).is_file() and (root / f).stat().st_size > 0 for f in files)
    assert sum(script.calls.values()) == 18
    _, page = await call(jp_fetch, "runs", accepted["runId"], "events")
    types = [e["type"] for e in page["events"]]
    assert {"generation.step", "generation.file", "generation.progress", "generation.info"} <= set(types)
    steps = [e["data"] for e in page["events"] if e["type"] == "generation.step"]
    assert sum(1 for s in steps if s["state"] == "finished") == 10
    # a second generation into the same folder is refused while the folder is not empty
    status, conflict = await call(jp_fetch, "generate", method="POST", body=body)
    assert status == 409 and "not empty" in conflict["message"]
    status, reverted = await call(jp_fetch, "runs", accepted["runId"], "revert", method="POST")
    assert status == 200 and set(files) <= set(reverted["reverted"])
    assert not (root / "pomodoro").exists()


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"description": "x", "kind": "cobol", "path": "a"}, 400, "unknown project kind 'cobol'"),
        ({"description": "x", "kind": "react-vite", "path": "../up"}, 400, "outside the workspace"),
        ({"description": "x", "kind": "react-vite", "path": "/etc"}, 400, "outside the workspace"),
        ({"description": "x", "kind": "react-vite", "path": "."}, 400, "workspace root itself"),
        ({"kind": "react-vite", "path": "a"}, 400, "description must be a non-empty string"),
        ({"description": "x", "kind": "react-vite", "path": "a", "overwrite": "yes"}, 400, "overwrite must be"),
        ({"description": "x", "kind": "react-vite", "path": "taken"}, 409, "'taken' is not empty"),
    ],
)
async def test_generate_refuses_bad_requests(jp_fetch: Any, polaris: Any, body: dict[str, Any], status: int, message: str) -> None:
    taken = Path(polaris.root_dir) / "taken"
    taken.mkdir(exist_ok=True)
    (taken / "main.py").write_text("print('mine')\n")
    got, error = await call(jp_fetch, "generate", method="POST", body=body)
    assert got == status and message in error["message"], error
    assert not any(r.task_id == "generate-project" for r in polaris.engine.active_runs())
    assert (taken / "main.py").read_text() == "print('mine')\n"


async def test_overwrite_allows_a_non_empty_folder(jp_fetch: Any, polaris: Any, model: ScriptedModelServer) -> None:
    kept = Path(polaris.root_dir) / "site" / "notes.txt"
    kept.parent.mkdir()
    kept.write_text("keep me\n")
    body = {"description": "A tiny package", "kind": "python-package", "path": "site", "overwrite": True}
    status, accepted = await call(jp_fetch, "generate", method="POST", body=body)
    assert status == 202
    run = await wait_status(jp_fetch, accepted["runId"], {"COMPLETED", "FAILED"}, timeout_s=60)
    assert run["status"] == "COMPLETED", run["error"]
    assert kept.read_text() == "keep me\n" and (kept.parent / "pyproject.toml").is_file()


async def test_a_client_can_send_its_own_plan(jp_fetch: Any, polaris: Any, model: ScriptedModelServer, script: ScriptedGeneration) -> None:
    plan = {"id": "landing", "title": "Landing page", "steps": [
        {"id": "html", "title": "HTML", "prompt": "Write index.html for: $description"},
        {"id": "css", "title": "CSS", "prompt": "Write style.css", "dependsOn": ["html"]},
    ]}
    script.files.update({"html": "index.html", "css": "style.css"})
    body = {"description": "A bakery", "kind": "landing", "path": "bakery", "plan": plan}
    status, accepted = await call(jp_fetch, "generate", method="POST", body=body)
    assert status == 202, accepted
    run = await wait_status(jp_fetch, accepted["runId"], {"COMPLETED", "FAILED"}, timeout_s=60)
    assert run["status"] == "COMPLETED", run["error"]
    assert run["output"]["files"] == ["bakery/index.html", "bakery/style.css"]
    assert dict(script.calls) == {"html": 2, "css": 2}
    cyclic = {**plan, "steps": [{**plan["steps"][0], "dependsOn": ["css"]}, plan["steps"][1]]}
    status, error = await call(jp_fetch, "generate", method="POST", body={**body, "path": "b2", "plan": cyclic})
    assert status == 400 and "cycle: html -> css -> html" in error["message"]
    status, error = await call(jp_fetch, "generate", method="POST", body={**body, "path": "b3", "kind": "other"})
    assert status == 400 and "the plan is for kind 'landing'" in error["message"]
    status, error = await call(jp_fetch, "generate", method="POST", body={**body, "path": "b4", "plan": ["x"]})
    assert status == 400 and "plan must be" in error["message"]


def test_routes_are_in_the_openapi_document() -> None:
    paths = openapi_document()["paths"]
    assert {"/polaris/api/v1/project-kinds", "/polaris/api/v1/project-kinds/{kindId}", "/polaris/api/v1/generate"} <= set(paths)
    assert set(paths["/polaris/api/v1/generate"]["post"]["responses"]) >= {"202", "400", "409"}


@pytest.mark.slow
def test_generation_resumes_after_the_server_is_killed(tmp_path: Path) -> None:
    """SIGKILL the server while a step waits on the model; after restart only unfinished steps run."""
    script = ScriptedGeneration(tokens_per_file=40)
    in_pages = threading.Event()

    async def responder(request: dict[str, Any]) -> Response:
        if step_id_of_request(request) == "pages" and not in_pages.is_set():
            in_pages.set()
            await asyncio.sleep(60)  # the server dies while waiting for this answer
        return script(request)

    model = ScriptedModelServer.start_in_thread(responder=responder)
    root = tmp_path / "root"
    root.mkdir()
    env = {"OPENAI_BASE_URL": model.base_url, "OPENAI_API_KEY": "sk-test", "OPENAI_MODEL": "scripted-1",
           "POLARIS_PROVIDER": "openai", "POLARIS_LOCAL_BASE_URL": "http://127.0.0.1:9/v1"}
    extension = ['--ServerApp.jpserver_extensions={"polaris_jupyter": True}']
    server = LiveServer(root, tmp_path / "polaris.db", env=env, extra_args=extension).start()
    restarted: LiveServer | None = None
    try:
        status, accepted = server.request("POST", "/polaris/api/v1/generate",
                                          {"description": "A quiz game", "kind": "react-vite", "path": "quiz"})
        assert status == 202, accepted
        assert in_pages.wait(60), "the pages step never asked the model"
        server.kill()
        before = dict(script.calls)
        restarted = LiveServer(root, tmp_path / "polaris.db", env=env, extra_args=extension).start()
        run = restarted.wait_run(accepted["runId"], {"COMPLETED", "FAILED", "CRASHED"}, timeout_s=60)
        assert run["status"] == "COMPLETED", run["error"]
        assert [a["status"] for a in run["attempts"]] == ["CRASHED", "COMPLETED"]
        after = dict(script.calls)
        assert {s for s in after if after[s] != before.get(s, 0)} == {"pages", "verify"}
        assert set(run["output"]["resumedSteps"]) >= {"config-files", "source-structure", "components", "hooks",
                                                      "types", "utilities"}
        assert all((root / f).is_file() for f in run["output"]["files"]) and len(run["output"]["files"]) == 13
    finally:
        server.stop()
        if restarted is not None:
            restarted.stop()
        model.stop()
