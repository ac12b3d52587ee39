"""A Polaris host process for the crash tests: an engine with ``run-notebook`` registered that
triggers one run, prints its id and then serves it until it is killed.

    python -m tests.tasks.notebook_host <db> <workspace> <payload JSON>
"""

from __future__ import annotations

import asyncio
import json
import sys

from polaris_jupyter.jobs import Engine, RetryPolicy, TaskRegistry
from polaris_jupyter.tasks.run_notebook import RUN_NOTEBOOK_TASK_ID, register_run_notebook


async def serve(db: str, root: str, payload: str) -> None:
    engine = Engine(db, TaskRegistry(), default_retry=RetryPolicy(min_timeout_s=0.01, max_timeout_s=0.05))
    register_run_notebook(engine, root)
    await engine.start()
    handle = await engine.trigger(RUN_NOTEBOOK_TASK_ID, json.loads(payload))
    print(json.dumps({"runId": handle.id}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(*sys.argv[1:4]))
