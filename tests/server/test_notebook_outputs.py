"""The outputs of a ``run-notebook`` run served read-only over REST (they live in the hidden
``.polaris/jobs/<run id>/``, which Jupyter's contents API refuses): the executed notebook as JSON,
the HTML as text, and clear 4xx answers for what a run did not write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import async_wait_until
from tests.helpers import rest as call
from tests.tasks.conftest import write_notebook

pytestmark = pytest.mark.slow


async def finished_run(jp_fetch: Any, run_id: str) -> dict[str, Any]:
    async def final() -> dict[str, Any] | None:
        _, run = await call(jp_fetch, "runs", run_id)
        return run if run["status"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELED") else None

    return await async_wait_until(final, 120, f"run {run_id} to finish")


async def test_the_outputs_of_a_notebook_run_are_served_and_what_it_did_not_write_is_a_404(
    jp_fetch: Any, polaris: Any, jp_root_dir: Path
) -> None:
    write_notebook(jp_root_dir, "daily.ipynb", "print(f'n is {n}')", parameters="n = 1")
    status, started = await call(
        jp_fetch, "tasks", "run-notebook", "trigger", method="POST",
        body={"payload": {"path": "daily.ipynb", "parameters": {"n": 7}, "outputs": ["ipynb", "html"]}},
    )
    assert status == 200, started
    run_id = started["id"]
    run = await finished_run(jp_fetch, run_id)
    assert run["status"] == "COMPLETED", run.get("error")

    status, ipynb = await call(jp_fetch, "runs", run_id, "outputs", "ipynb")
    assert status == 200, ipynb
    assert (ipynb["path"], ipynb["name"], ipynb["mimetype"]) == (
        f".polaris/jobs/{run_id}/daily.ipynb", "daily.ipynb", "application/x-ipynb+json",
    )
    printed = "".join("".join(o.get("text", "")) for o in ipynb["content"]["cells"][-1]["outputs"])  # str or lines
    assert printed == "n is 7\n" and ipynb["size"] == (jp_root_dir / ipynb["path"]).stat().st_size
    status, html = await call(jp_fetch, "runs", run_id, "outputs", "html")
    assert status == 200 and html["mimetype"] == "text/html" and "n is 7" in html["content"]

    # What the run did not write, and what is not a notebook run.
    (jp_root_dir / ".polaris" / "jobs" / run_id / "daily.html").unlink()
    status, error = await call(jp_fetch, "runs", run_id, "outputs", "html")
    assert status == 404 and "is not written yet" in error["message"]
    status, error = await call(jp_fetch, "runs", run_id, "outputs", "pdf")
    assert status == 400 and "unknown output format 'pdf'" in error["message"]
    status, error = await call(jp_fetch, "runs", "run_nope", "outputs", "ipynb")
    assert status == 404 and "run_nope" in error["message"]
    _, echo = await call(jp_fetch, "tasks", "test-echo", "trigger", method="POST", body={"payload": {"outputs": {"ipynb": "x"}}})
    status, error = await call(jp_fetch, "runs", echo["id"], "outputs", "ipynb")
    assert status == 404 and "not a run-notebook run" in error["message"]

    status, plain = await call(
        jp_fetch, "tasks", "run-notebook", "trigger", method="POST", body={"payload": {"path": "daily.ipynb"}}
    )
    assert (await finished_run(jp_fetch, plain["id"]))["status"] == "COMPLETED"
    status, error = await call(jp_fetch, "runs", plain["id"], "outputs", "html")
    assert status == 404 and "has no html output" in error["message"]
