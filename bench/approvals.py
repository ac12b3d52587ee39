"""The approval round trip of a chat turn, on the scripted model (real openai client over HTTP).

Each round posts a message whose model step calls ``writeFile`` in permission mode ``ask``. The
run suspends (WAITING, no worker held) and ``approval.requested`` reaches an event subscriber;
the bench then approves through the API (``decide_approval``, what the REST route and the
kernel call) and waits for the tool call's ``toolcall.finished`` (the file written). Measured,
as a subscriber sees them (after the store's commit, like every UI):

- round trip: ``approval.requested`` seen → approve → ``toolcall.finished`` seen (p50, p95);
- decide: the ``decide_approval`` call itself (the row, the card, the resume);
- resume: decision answered → the resumed attempt's ``toolcall.started`` seen;
- for comparison, the same turn in mode ``auto``: ``toolcall.started`` → ``toolcall.finished``
  (what running the tool costs without any approval).

The last line is one JSON object.

    python bench/approvals.py --rounds 40
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from polaris_jupyter.config import PolarisConfig
from polaris_jupyter.jobs import EventFilter, TaskRegistry
from polaris_jupyter.runtime import PolarisRuntime
from polaris_jupyter.testing import Response, ScriptedModelServer


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Events:
    """Every event of the runtime, as a subscriber receives it, with its arrival time."""

    def __init__(self, runtime: PolarisRuntime) -> None:
        self.runtime = runtime
        self.seen: list[tuple[float, Any]] = []
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        async for event in self.runtime.engine.bus.subscribe(EventFilter(), since=self.runtime.engine.bus.last_seq):
            self.seen.append((time.perf_counter(), event))
            self.changed.set()

    async def wait(self, type: str, **match: Any) -> tuple[float, Any]:
        """The first event of ``type`` whose data has ``match`` (``toolCallId`` and ``callStatus`` look in
        ``toolCall``: its id and status)."""
        start = 0
        while True:
            for at, event in self.seen[start:]:
                data = event.data
                call = data.get("toolCall") or {}
                fields = {**data, "toolCallId": call.get("id") or data.get("toolCallId"), "callStatus": call.get("status")}
                if event.type == type and all(fields.get(k) == v for k, v in match.items()):
                    return at, event
            start = len(self.seen)
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 30)

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def one_round(runtime: PolarisRuntime, events: Events, model: ScriptedModelServer, i: int, mode: str) -> dict[str, float]:
    conv = await runtime.chat.create_conversation()
    await runtime.chat.set_permission_mode(conv.id, mode)
    model.enqueue(Response.tool("writeFile", {"path": f"bench/{mode}-{i}.txt", "content": f"round {i}\n"}), Response(text="ok"))
    message, run_id = await runtime.chat.post_message(conv.id, "write the file")
    if mode == "auto":
        started_at, started = await events.wait("toolcall.started", messageId=message.id)
        finished_at, _ = await events.wait("toolcall.finished", toolCallId=started.data["toolCall"]["id"])
        await runtime.engine.wait_for(run_id, timeout_s=30)
        return {"tool_ms": (finished_at - started_at) * 1000}
    requested_at, requested = await events.wait("approval.requested", messageId=message.id)
    approval = requested.data["approval"]
    decide_start = time.perf_counter()
    await runtime.api.dispatch("decide_approval", path={"approvalId": approval["id"]}, body={"decision": "approve"})
    decided_at = time.perf_counter()
    resumed_at, _ = await events.wait("toolcall.started", toolCallId=approval["toolCallId"], callStatus="running")
    finished_at, _ = await events.wait("toolcall.finished", toolCallId=approval["toolCallId"])
    final = await runtime.engine.wait_for(run_id, timeout_s=30)
    assert final.status.value == "COMPLETED" and (runtime.root_dir / f"bench/{mode}-{i}.txt").exists()
    return {
        "round_trip_ms": (finished_at - requested_at) * 1000,
        "decide_ms": (decided_at - decide_start) * 1000,
        "resume_ms": (resumed_at - decided_at) * 1000,
    }


async def bench(rounds: int, workdir: Path) -> dict[str, Any]:
    async with ScriptedModelServer() as model:
        os.environ.update(OPENAI_BASE_URL=model.base_url, OPENAI_API_KEY="sk-bench", OPENAI_MODEL="scripted-1",
                          POLARIS_PROVIDER="openai")
        (workdir / "ws").mkdir()
        config = PolarisConfig(db_path=str(workdir / "polaris.db"), stream_window_ms=20)
        runtime = PolarisRuntime(config, root_dir=workdir / "ws", registry=TaskRegistry())
        await runtime.start()
        events = Events(runtime)
        try:
            await one_round(runtime, events, model, -1, "ask")  # warm up: connections, imports
            asks = [await one_round(runtime, events, model, i, "ask") for i in range(rounds)]
            autos = [await one_round(runtime, events, model, i, "auto") for i in range(rounds)]
        finally:
            await events.close()
            await runtime.stop()
    series = {key: [r[key] for r in asks] for key in asks[0]}
    series["tool_ms"] = [r["tool_ms"] for r in autos]
    return {key: {"p50": round(pct(v, 0.5), 3), "p95": round(pct(v, 0.95), 3), "mean": round(statistics.fmean(v), 3)}
            for key, v in series.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    for name in ("CEREBRAS_API_KEY", "OPENROUTER_API_KEY", "POLARIS_LOCAL_BASE_URL", "POLARIS_MODEL"):
        os.environ.pop(name, None)
    with tempfile.TemporaryDirectory() as tmp:
        figures = asyncio.run(bench(args.rounds, Path(tmp)))
    labels = {
        "round_trip_ms": "approval.requested -> approve -> applied",
        "decide_ms": "decide_approval call",
        "resume_ms": "decided -> resumed tool call starts",
        "tool_ms": "same writeFile in mode auto (no approval)",
    }
    print(f"{'':44}{'p50 ms':>10}{'p95 ms':>10}   ({args.rounds} rounds, scripted model)")
    for key, label in labels.items():
        print(f"{label:44}{figures[key]['p50']:>10.2f}{figures[key]['p95']:>10.2f}")
    print(json.dumps({"rounds": args.rounds, **{k: v for k, v in figures.items()},
                      "approval_round_trip_p50_ms": figures["round_trip_ms"]["p50"]}))


if __name__ == "__main__":
    main()
