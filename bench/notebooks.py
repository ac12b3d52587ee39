"""A notebook as a background job: trigger → executed output, next to bare papermill and a peer.

- papermill CLI: ``python -m papermill --no-progress-bar one.ipynb out.ipynb`` (a fresh process
  and kernel, as a cron line would run it), and papermill's Python API in a fresh process
  (``python -c "papermill.execute_notebook(...)"``, the floor: no CLI imports). The overhead
  figure is polaris over the faster of the two.
- polaris: ``run-notebook`` through a running engine with the SQLite store — trigger (durable),
  runner process, kernel, per-cell events and metadata, the executed notebook under
  ``.polaris/jobs/<run>/``, until ``trigger_and_wait`` returns COMPLETED.
- peer (``--jupyter-scheduler PYTHON``): jupyter-scheduler in the Jupyter server of the venv that
  PYTHON belongs to: ``POST /scheduler/jobs``, then ``GET`` the job every 20 ms (its UI polls every
  10 s) until COMPLETED.

The notebook has one code cell. Rounds alternate between the contenders after one warm-up
round each; figures are medians over ``--repeat`` rounds (at least 5). The last line is one JSON
object.

    python bench/notebooks.py --repeat 7 [--jupyter-scheduler /tmp/js-venv/bin/python]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import nbformat

from polaris_jupyter.jobs import Engine, RetryPolicy, TaskRegistry
from polaris_jupyter.tasks.run_notebook import RUN_NOTEBOOK_TASK_ID, register_run_notebook

NOTEBOOK = "one.ipynb"
TARGET_X = 1.2


def write_notebook(root: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells.append(nbformat.v4.new_code_cell("x = 1 + 1\nx"))
    nbformat.write(nb, root / NOTEBOOK)


async def papermill_once(root: Path, n: int) -> float:
    out = root / f"papermill-{n}.ipynb"
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "papermill", "--no-progress-bar", NOTEBOOK, str(out), cwd=root,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    code = await proc.wait()
    elapsed = time.perf_counter() - start
    if code != 0 or not out.exists():
        raise RuntimeError(f"papermill exited with {code}")
    return elapsed


PAPERMILL_API = (
    "import sys, papermill; papermill.execute_notebook(sys.argv[1], sys.argv[2], progress_bar=False)"
)


async def papermill_api_once(root: Path, n: int) -> float:
    out = root / f"papermill-api-{n}.ipynb"
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PAPERMILL_API, NOTEBOOK, str(out), cwd=root,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    code = await proc.wait()
    elapsed = time.perf_counter() - start
    if code != 0 or not out.exists():
        raise RuntimeError(f"papermill (API) exited with {code}")
    return elapsed


async def polaris_once(engine: Engine) -> float:
    start = time.perf_counter()
    result = await engine.trigger_and_wait(RUN_NOTEBOOK_TASK_ID, {"path": NOTEBOOK})
    elapsed = time.perf_counter() - start
    if not result.ok:
        raise RuntimeError(f"run-notebook failed: {result.error}")
    return elapsed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def jupyter_scheduler(python: str, root: Path, workdir: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A Jupyter server of ``python``'s venv with jupyter-scheduler, serving ``root``."""
    port, token = free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "POLARIS"))}
    env["JUPYTER_CONFIG_DIR"] = str(workdir / "jupyter-config")
    env["JUPYTER_RUNTIME_DIR"] = str(workdir / "jupyter-runtime")
    env["JUPYTER_DATA_DIR"] = str(workdir / "jupyter-data")
    for key in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR"):
        os.makedirs(env[key], exist_ok=True)  # its SQLite file lives in the data dir
    log = open(workdir / "jupyter-scheduler.log", "wb")  # once, before any timing
    proc = subprocess.Popen(
        [python, "-m", "jupyter", "server", "--no-browser", f"--port={port}", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", "--ServerApp.disable_check_xsrf=True", "--allow-root"],
        stdout=log, stderr=log, env=env, cwd=root,
    )
    base = f"http://127.0.0.1:{port}"
    client = httpx.AsyncClient(base_url=base, headers={"Authorization": f"token {token}"}, timeout=30)
    try:
        for _ in range(600):
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/scheduler/runtime_environments")).status_code == 200:
                    break
            if proc.poll() is not None:
                raise RuntimeError(f"the Jupyter server exited; see {workdir / 'jupyter-scheduler.log'}")
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("jupyter-scheduler did not answer within 60 s")
        version = subprocess.run(
            [python, "-c", "import importlib.metadata as m; print(m.version('jupyter_scheduler'))"],
            capture_output=True, text=True, check=False,
        ).stdout.strip() or "?"
        yield client, version
    finally:
        await client.aclose()
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.poll() is None:
            proc.kill()
        log.close()


async def scheduler_once(client: httpx.AsyncClient, n: int) -> float:
    body = {"input_uri": NOTEBOOK, "runtime_environment_name": "python3", "name": f"bench-{n}",
            "output_formats": ["ipynb"]}
    start = time.perf_counter()
    answer = await client.post("/scheduler/jobs", json=body)
    answer.raise_for_status()
    job_id = answer.json()["job_id"]
    deadline = start + 600
    while True:
        job = (await client.get(f"/scheduler/jobs/{job_id}")).json()
        # A new job reads STOPPED until its process picks it up; STOPPED is final once it ended.
        if job["status"] in ("COMPLETED", "FAILED") or (job["status"] == "STOPPED" and job.get("end_time")):
            break
        if time.perf_counter() > deadline:
            raise RuntimeError(f"jupyter-scheduler job still {job['status']} after 600 s")
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - start
    if job["status"] != "COMPLETED":
        raise RuntimeError(f"jupyter-scheduler job {job['status']}: {job.get('status_message')}")
    return elapsed


async def measure(repeat: int, scheduler_python: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        root = workdir / "ws"
        root.mkdir()
        write_notebook(root)
        engine = Engine(workdir / "runs.db", TaskRegistry(), default_retry=RetryPolicy(max_attempts=1))
        register_run_notebook(engine, root)
        await engine.start()
        rounds: dict[str, list[float]] = {"papermill": [], "papermill_api": [], "polaris": [], "scheduler": []}
        note = "not run: pass --jupyter-scheduler PYTHON (a venv with jupyter-scheduler and ipykernel)"
        scheduler_version = None
        try:
            async with contextlib.AsyncExitStack() as stack:
                client = None
                if scheduler_python:
                    try:
                        client, scheduler_version = await stack.enter_async_context(
                            jupyter_scheduler(scheduler_python, root, workdir))
                        note = ""
                    except (RuntimeError, OSError) as exc:
                        note = f"not run: {exc}"
                await papermill_once(root, -1)  # warm-up: caches, kernelspec lookups, .pyc files
                await papermill_api_once(root, -1)
                await polaris_once(engine)
                if client is not None:
                    await scheduler_once(client, -1)
                for n in range(repeat):
                    rounds["papermill"].append(await papermill_once(root, n))
                    rounds["papermill_api"].append(await papermill_api_once(root, n))
                    rounds["polaris"].append(await polaris_once(engine))
                    if client is not None:
                        rounds["scheduler"].append(await scheduler_once(client, n))
        finally:
            await engine.stop()
    med = {k: statistics.median(v) if v else None for k, v in rounds.items()}
    return {"rounds": rounds, "median": med, "scheduler_note": note, "scheduler_version": scheduler_version}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--jupyter-scheduler", metavar="PYTHON", default=None,
                        help="python of a venv where jupyter-scheduler (and ipykernel) is installed")
    args = parser.parse_args()
    repeat = max(5, args.repeat)
    figures = asyncio.run(measure(repeat, args.jupyter_scheduler))
    med = figures["median"]
    floor = min(med["papermill"], med["papermill_api"])
    ratio = med["polaris"] / floor
    print(f"1-cell notebook, trigger -> executed output, median of {repeat} rounds")
    print(f"{'bare papermill (CLI, fresh process)':46}{med['papermill']:>9.3f} s")
    print(f"{'bare papermill (Python API, fresh proc.)':46}{med['papermill_api']:>9.3f} s")
    print(f"{'polaris run-notebook (durable run)':46}{med['polaris']:>9.3f} s   "
          f"{ratio:.2f}x the faster papermill (target <= {TARGET_X}x)")
    if med["scheduler"] is not None:
        print(f"{'jupyter-scheduler ' + str(figures['scheduler_version']) + ' (REST, 20 ms poll)':46}"
              f"{med['scheduler']:>9.3f} s   "
              f"{med['scheduler'] / med['polaris']:.2f}x polaris")
    else:
        print(f"{'jupyter-scheduler':46}{figures['scheduler_note']}")
    for name, values in figures["rounds"].items():
        if values:
            print(f"  rounds, {name}: " + ", ".join(f"{v:.2f}" for v in values) + " s")
    print(json.dumps({
        "bench": "notebooks",
        "cells": 1,
        "repeat": repeat,
        "papermill_median_s": round(med["papermill"], 4),
        "papermill_api_median_s": round(med["papermill_api"], 4),
        "polaris_median_s": round(med["polaris"], 4),
        "polaris_over_papermill_x": round(ratio, 3),
        "target_x": TARGET_X,
        "jupyter_scheduler_median_s": None if med["scheduler"] is None else round(med["scheduler"], 4),
        "jupyter_scheduler_version": figures["scheduler_version"],
        "jupyter_scheduler_note": figures["scheduler_note"] or None,
    }))


if __name__ == "__main__":
    main()
