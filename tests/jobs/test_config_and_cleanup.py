"""Configuration from traitlets and POLARIS_* variables, the cleanup task, idempotency scopes,
and the extension being enabled by `pip install`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Config

from polaris_jupyter.chat.approvals import Approval, ApprovalStatus
from polaris_jupyter.config import PolarisConfig
from polaris_jupyter.jobs import FakeClock, RunContext, RunStatus, TaskRegistry, TriggerOptions, task
from polaris_jupyter.runtime import PolarisRuntime
from polaris_jupyter.tools.notebook_proposals import Proposal


def test_settings_come_from_env_and_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("POLARIS_DB_PATH", str(tmp_path / "x.db"))
    monkeypatch.setenv("POLARIS_POOL_SIZE", "7")
    monkeypatch.setenv("POLARIS_TASK_MODULES", "a.tasks, b.tasks")
    monkeypatch.setenv("POLARIS_DEFAULT_RETRY", '{"maxAttempts": 5, "minTimeoutInMs": 250}')
    monkeypatch.setenv("POLARIS_RETENTION_DAYS", "3")
    cfg = PolarisConfig()
    assert cfg.db_path == str(tmp_path / "x.db")
    assert cfg.pool_size == 7
    assert cfg.task_modules == ["a.tasks", "b.tasks"]
    policy = cfg.retry_policy()
    assert policy.max_attempts == 5 and policy.min_timeout_s == 0.25 and policy.factor == 2
    assert cfg.retention_days == 3
    # Explicit config (jupyter_server_config.py / command line) wins over the environment.
    c = Config()
    c.PolarisConfig.pool_size = 64
    assert PolarisConfig(config=c).pool_size == 64
    with pytest.raises(Exception, match="at least 1"):
        PolarisConfig(pool_size=0)
    for trait in PolarisConfig.class_traits(config=True).values():
        assert trait.help, f"{trait.name} has no help"


@pytest.mark.asyncio
async def test_cleanup_deletes_old_finished_runs_and_their_events(tmp_path: Path) -> None:
    clock = FakeClock()
    registry = TaskRegistry()

    @task(id="old", registry=registry)
    async def old(payload: Any, ctx: RunContext) -> None:
        ctx.logger.info("hi")

    # Jan 1st only: the daily schedule must not fire (and clean up first) during the clock jump.
    cfg = PolarisConfig(db_path=str(tmp_path / "p.db"), retention_days=1, cleanup_timezone="UTC", cleanup_cron="0 2 1 1 *")
    runtime = PolarisRuntime(cfg, root_dir=tmp_path, registry=registry, clock=clock)
    await runtime.start()
    try:
        engine = runtime.engine
        first = await engine.trigger_and_wait("old")
        clock.advance(2 * 86400)
        recent = await engine.trigger_and_wait("old")
        pending = await engine.trigger("old", None, TriggerOptions(delay_s=10 * 86400))
        # Rows the parts keep per run: they go with their run, and only then.
        for run_id in (first.run.id, recent.run.id):
            await runtime.proposals.record(Proposal(f"p-{run_id}", run_id, None, "a.ipynb", 0, None, "code", "x",
                                                    "y", "-x\n+y", "why", "pending", "2026-01-01T00:00:00Z"))
            await runtime.journal.record(run_id, "a.txt", b"old", b"new", "-old\n+new")
            runtime.chat.approvals.store.put(Approval(f"a-{run_id}", run_id, 1, None, None, f"c-{run_id}", "writeFile",
                                                      {"path": "a.txt"}, None, "write", ApprovalStatus.PENDING, 0.0))
        await engine.store.commit()
        result = await engine.trigger_and_wait("cleanup")
        assert result.ok and result.output["deletedRuns"] == 1
        assert result.output["deletedRunRows"] == {"cell_proposals": 1, "file_edits": 1, "approvals": 1}
        assert await runtime.proposals.for_run(first.run.id) == []
        assert [p.id for p in await runtime.proposals.for_run(recent.run.id)] == [f"p-{recent.run.id}"]
        assert await runtime.chat.approvals.store.for_run(first.run.id) == []
        assert len(await runtime.chat.approvals.store.for_run(recent.run.id)) == 1
        assert await engine.store.get_run(first.run.id) is None
        assert await engine.store.run_events(first.run.id, 0) == []
        assert await engine.store.logs(first.run.id) == []
        assert (await engine.get_run(recent.run.id)).status is RunStatus.COMPLETED
        assert (await engine.get_run(pending.id)).status is RunStatus.DELAYED
        schedules = {s.id: s for s in engine.schedules.list()}
        assert schedules["cleanup-daily"].cron == "0 2 1 1 *"
        assert PolarisConfig().cleanup_cron == "0 2 * * *"
    finally:
        await runtime.stop()


@pytest.mark.asyncio
async def test_idempotency_scopes_for_child_runs(make_engine: Any, registry: TaskRegistry) -> None:
    children: list[str] = []

    @task(id="child", registry=registry)
    async def child(payload: Any, ctx: RunContext) -> None:
        return None

    @task(id="parent", registry=registry)
    async def parent(payload: Any, ctx: RunContext) -> list[str]:
        for scope in ("run", "run", "global"):
            handle = await ctx.trigger("child", None, TriggerOptions(idempotency_key="k", idempotency_scope=scope))
            children.append(handle.id)
        return children

    engine = await make_engine()
    await engine.trigger_and_wait("parent")
    first_parent = list(children)
    children.clear()
    await engine.trigger_and_wait("parent")
    assert first_parent[0] == first_parent[1], "same key in the same run → same child"
    assert children[0] != first_parent[0], "run scope: another parent run gets its own child"
    assert children[2] == first_parent[2], "global scope is shared across parents"
    child_run = await engine.get_run(first_parent[0])
    assert child_run.parent_run_id is not None


def test_pip_install_enables_the_server_extension() -> None:
    jupyter = Path(sys.executable).parent / "jupyter"
    result = subprocess.run(
        [str(jupyter), "server", "extension", "list"], capture_output=True, text=True, timeout=120
    )
    out = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)  # drop terminal colours
    assert re.search(r"^\s*polaris_jupyter enabled\s*$", out, re.M), out
    assert re.search(r"^\s*polaris_jupyter [0-9.]+ OK\s*$", out, re.M), out
