"""Fixtures for generation tests: a runtime on a real engine + SQLite store whose only model is
the scripted OpenAI-compatible server (real openai client over HTTP), and run helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from polaris_jupyter.config import PolarisConfig
from polaris_jupyter.jobs import Event, TaskRegistry
from polaris_jupyter.runtime import PolarisRuntime
from polaris_jupyter.tasks.generate_script import ScriptedGeneration
from polaris_jupyter.testing import ScriptedModelServer


@dataclass
class Env:
    runtime: PolarisRuntime
    server: ScriptedModelServer
    script: ScriptedGeneration
    workspace: Path
    tmp: Path

    async def new_runtime(self) -> PolarisRuntime:
        """A second runtime on the same database and workspace (a restarted server)."""
        runtime = PolarisRuntime(_config(self.tmp), root_dir=self.workspace, registry=TaskRegistry())
        await runtime.start()
        return runtime


def _config(tmp: Path, attempts: int = 2) -> PolarisConfig:
    retry = {"maxAttempts": attempts, "minTimeoutInMs": 10, "maxTimeoutInMs": 20, "randomize": False}
    return PolarisConfig(db_path=str(tmp / "polaris.db"), default_retry=retry)


@pytest.fixture
def script() -> ScriptedGeneration:
    return ScriptedGeneration(tokens_per_file=60, ttft_s=0.05)


@pytest_asyncio.fixture
async def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: ScriptedGeneration) -> AsyncIterator[Env]:
    async with ScriptedModelServer(responder=script) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_MODEL", "scripted-1")
        monkeypatch.setenv("POLARIS_PROVIDER", "openai")  # no fallback to a local or bundled model
        monkeypatch.setenv("POLARIS_LOCAL_BASE_URL", "http://127.0.0.1:9/v1")
        for name in ("CEREBRAS_API_KEY", "OPENROUTER_API_KEY", "POLARIS_MODEL"):
            monkeypatch.delenv(name, raising=False)
        workspace = tmp_path / "workspace"
        workspace.mkdir()
        runtime = PolarisRuntime(_config(tmp_path), root_dir=workspace, registry=TaskRegistry())
        await runtime.start()
        try:
            yield Env(runtime, server, script, workspace, tmp_path)
        finally:
            await runtime.stop()


async def finish(runtime: PolarisRuntime, run_id: str, timeout_s: float = 60) -> Any:
    return await runtime.engine.wait_for(run_id, timeout_s=timeout_s)


async def step_events(runtime: PolarisRuntime, run_id: str) -> list[Event]:
    await runtime.engine.store.flush()
    return [e for e in await runtime.engine.store.run_events(run_id, 0) if e.type.startswith("generation.")]
