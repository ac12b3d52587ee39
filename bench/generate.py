"""Project generation wall time: the concurrent plan next to the same plan run in sequence.

Both runs generate the react-vite project through the real engine, store, agent loop, file
tools and openai client, against the scripted model server with realistic timing (0.3 s to
the first token, 1,000 tokens/s, ~1,500 tokens per file; each step writes one file, then says
it is done). "Sequential" is the seed's way: the same steps, each waiting for the previous one.

Then the cost of a retry after a failure in the LAST step (verify): resuming the failed run
(finished steps are checkpoints) next to regenerating the project from scratch (the seed's
retry), plus the engine's own automatic retry attempt.

    python bench/generate.py --repeat 3

Figures are medians over ``--repeat`` rounds. The last line is one JSON object.
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
from polaris_jupyter.jobs import RunStatus, TaskRegistry, TriggerOptions
from polaris_jupyter.runtime import PolarisRuntime
from polaris_jupyter.tasks.generate import GENERATE_TASK_ID, resume_generation, start_generation
from polaris_jupyter.tasks.generate_script import ScriptedGeneration
from polaris_jupyter.tasks.project_kinds import REACT_VITE, register_project_kind
from polaris_jupyter.testing import ScriptedModelServer

SEQUENTIAL = REACT_VITE.sequential()


def model_env(base_url: str) -> None:
    os.environ.update(
        OPENAI_BASE_URL=base_url,
        OPENAI_API_KEY="sk-bench",
        OPENAI_MODEL="scripted-bench",
        POLARIS_PROVIDER="openai",  # never fall back to a local or bundled model
        POLARIS_LOCAL_BASE_URL="http://127.0.0.1:9/v1",
    )
    for name in ("CEREBRAS_API_KEY", "OPENROUTER_API_KEY", "POLARIS_MODEL"):
        os.environ.pop(name, None)


async def timed_run(runtime: PolarisRuntime, run_id: str) -> tuple[float, Any]:
    run = await runtime.engine.wait_for(run_id, timeout_s=600)
    if run.status is not RunStatus.COMPLETED:
        raise RuntimeError(f"run {run_id} ended {run.status.value}: {run.error}")
    return run.finished_at - run.created_at, run


async def generate(runtime: PolarisRuntime, kind: str, path: str) -> float:
    start = time.perf_counter()
    run_id = await start_generation(runtime, "A kanban board with drag and drop", kind=kind, path=path)
    await timed_run(runtime, run_id)
    return time.perf_counter() - start


async def retry_costs(runtime: PolarisRuntime, script: ScriptedGeneration, path: str) -> dict[str, float]:
    """Fail the last step once, then: resume it, regenerate from scratch, and the engine's own retry."""
    engine = runtime.engine
    payload = {"description": "A kanban board with drag and drop", "kind": REACT_VITE.id, "path": path,
               "overwrite": True}
    script.fail_next("verify")
    failed = await engine.trigger(GENERATE_TASK_ID, payload, TriggerOptions(max_attempts=1))
    run = await engine.wait_for(failed.id, timeout_s=600)
    assert run.status is RunStatus.FAILED and "'verify'" in (run.error or {}).get("message", ""), run.error
    calls_before = sum(script.calls.values())
    start = time.perf_counter()
    resumed_id = await resume_generation(runtime, failed.id)
    await timed_run(runtime, resumed_id)
    resume_s = time.perf_counter() - start
    resume_calls = sum(script.calls.values()) - calls_before
    start = time.perf_counter()
    scratch = await engine.replay(failed.id, resume=False)
    await timed_run(runtime, scratch.id)
    scratch_s = time.perf_counter() - start
    script.fail_next("verify")
    auto = await engine.trigger(GENERATE_TASK_ID, payload, TriggerOptions(max_attempts=2))
    await timed_run(runtime, auto.id)
    attempts = await engine.store.attempts(auto.id)
    second = attempts[-1]
    return {"resume_s": resume_s, "scratch_s": scratch_s, "resume_model_calls": resume_calls,
            "auto_retry_attempt_s": (second.finished_at or 0.0) - second.started_at}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    script = ScriptedGeneration(tokens_per_file=args.tokens_per_file, ttft_s=args.ttft_s, tokens_per_s=args.tokens_per_s)
    server = ScriptedModelServer.start_in_thread(responder=script)
    model_env(server.base_url)
    register_project_kind(SEQUENTIAL, replace=True)
    with tempfile.TemporaryDirectory(prefix="polaris-bench-gen-") as tmp:
        workspace = Path(tmp) / "workspace"
        workspace.mkdir()
        retry = {"maxAttempts": 2, "minTimeoutInMs": 10, "maxTimeoutInMs": 10, "randomize": False}
        runtime = PolarisRuntime(PolarisConfig(db_path=str(Path(tmp) / "bench.db"), default_retry=retry),
                                 root_dir=workspace, registry=TaskRegistry())
        await runtime.start()
        try:
            await runtime.models.chain()  # provider discovery is not part of a generation
            sequential: list[float] = []
            concurrent: list[float] = []
            for round_ in range(args.repeat):
                pair = [("seq", SEQUENTIAL.id, sequential), ("con", REACT_VITE.id, concurrent)]
                for name, kind, out in pair if round_ % 2 == 0 else reversed(pair):
                    out.append(await generate(runtime, kind, f"{name}-{round_}"))
                    print(f"round {round_ + 1}: {name:>3} {out[-1]:6.2f} s", flush=True)
            retries = [await retry_costs(runtime, script, f"retry-{i}") for i in range(args.repeat)]
            files = sum(1 for p in workspace.rglob("*") if p.is_file())
        finally:
            await runtime.stop()
            server.stop()
    seq_s, con_s = statistics.median(sequential), statistics.median(concurrent)
    resume_s = statistics.median(r["resume_s"] for r in retries)
    scratch_s = statistics.median(r["scratch_s"] for r in retries)
    auto_s = statistics.median(r["auto_retry_attempt_s"] for r in retries)
    resume_calls = int(statistics.median(r["resume_model_calls"] for r in retries))
    total_calls = sum(script.calls.values())
    print()
    print(f"react-vite, {REACT_VITE.model_steps} model steps, ~{args.tokens_per_file} tokens per file, "
          f"ttft {args.ttft_s} s, {args.tokens_per_s:g} tokens/s; medians of {args.repeat} rounds")
    print(f"  sequential plan (seed)     {seq_s:7.2f} s")
    print(f"  concurrent plan (polaris)  {con_s:7.2f} s   {con_s / seq_s:.2f}x sequential   (target <= 0.60x)")
    print(f"  regenerate from scratch    {scratch_s:7.2f} s")
    print(f"  resume after verify failed {resume_s:7.2f} s   {resume_s / scratch_s:.2f}x from scratch "
          f"(target <= 0.20x), {resume_calls} model calls")
    print(f"  engine auto-retry attempt  {auto_s:7.2f} s")
    print(f"  {total_calls} model requests served, {files} files written")
    return {
        "sequential_s": round(seq_s, 3),
        "concurrent_s": round(con_s, 3),
        "concurrent_vs_sequential": round(con_s / seq_s, 3),
        "full_s": round(scratch_s, 3),
        "retry_last_step_s": round(resume_s, 3),
        "retry_vs_full": round(resume_s / scratch_s, 3),
        "auto_retry_attempt_s": round(auto_s, 3),
        "retry_model_calls": resume_calls,
        "model_steps": REACT_VITE.model_steps,
        "tokens_per_file": args.tokens_per_file,
        "ttft_s": args.ttft_s,
        "tokens_per_s": args.tokens_per_s,
        "repeat": args.repeat,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tokens-per-file", type=int, default=1500)
    parser.add_argument("--ttft-s", type=float, default=0.3)
    parser.add_argument("--tokens-per-s", type=float, default=1000.0)
    figures = asyncio.run(main(parser.parse_args()))
    print(json.dumps(figures))
