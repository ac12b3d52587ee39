"""Schedules of ``run-notebook`` through REST: the payload (path, parameters, outputs) and the
trigger options are stored and listed, a firing runs the notebook with those parameters and
options (a real kernel), and a payload run-notebook would refuse is a 400 when the schedule is
created (or the run triggered), not a failed run later."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.helpers import async_wait_until
from tests.helpers import rest as call
from tests.tasks.conftest import write_notebook

pytestmark = pytest.mark.slow

PAYLOAD = {"path": "reports/daily.ipynb", "parameters": {"n": 3, "city": "Zürich"}, "outputs": ["ipynb", "html"]}


def report_notebook(root: Path) -> None:
    write_notebook(root, "reports/daily.ipynb", "print(f'{city}: {n * 2}')", parameters="n = 1\ncity = 'Paris'")


async def test_a_schedule_fires_the_notebook_with_its_parameters_and_options(
    jp_fetch: Any, polaris: Any, jp_root_dir: Path
) -> None:
    report_notebook(jp_root_dir)
    status, created = await call(
        jp_fetch, "schedules", method="POST",
        body={"task": "run-notebook", "cron": "0 6 * * *", "timezone": "Europe/Paris", "payload": PAYLOAD,
              "options": {"maxAttempts": 2, "tags": ["daily"]}},
    )
    assert status == 201, created
    assert created["payload"] == PAYLOAD and created["options"] == {"maxAttempts": 2, "tags": ["daily"]}
    assert created["nextRun"].endswith(("04:00:00Z", "05:00:00Z"))  # 06:00 in Paris (summer / winter)
    _, listing = await call(jp_fetch, "schedules")
    (listed,) = [s for s in listing["data"] if s["id"] == created["id"]]
    assert listed["payload"] == PAYLOAD and listed["taskId"] == "run-notebook"

    # The timer's firing of the next slot (called directly: the test does not wait for 6 am).
    await polaris.engine.schedules.fire(created["id"])
    _, runs = await call(jp_fetch, "runs", params={"tag": f"schedule:{created['id']}"})
    (run,) = runs["data"]
    assert run["taskId"] == "run-notebook" and run["maxAttempts"] == 2 and "daily" in run["tags"]
    assert run["payload"]["scheduleId"] == created["id"] and run["payload"]["payload"] == PAYLOAD

    async def finished() -> dict[str, Any] | None:
        _, current = await call(jp_fetch, "runs", run["id"])
        return current if current["status"] in ("COMPLETED", "FAILED", "CRASHED") else None

    final = await async_wait_until(finished, 120, "the scheduled notebook run to finish")
    assert final["status"] == "COMPLETED", final.get("error")
    outputs = final["output"]["outputs"]
    assert outputs == {"ipynb": f".polaris/jobs/{run['id']}/daily.ipynb", "html": f".polaris/jobs/{run['id']}/daily.html"}
    executed = nbformat.read(jp_root_dir / outputs["ipynb"], as_version=4)
    assert "".join(o.get("text", "") for o in executed.cells[-1].outputs) == "Zürich: 6\n"
    assert (jp_root_dir / outputs["html"]).is_file()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"payload": None}, "the payload must be an object"),
        ({"payload": {"parameters": {"n": 1}}}, "path is required"),
        ({"payload": {"path": "reports/missing.ipynb"}}, "reports/missing.ipynb"),
        ({"payload": {"path": "reports/daily.ipynb", "params": {}}}, "unknown payload field 'params'"),
        ({"payload": {"path": "reports/daily.ipynb", "parameters": {"1x": 1}}}, "not a valid identifier"),
        ({"payload": {"path": "reports/daily.ipynb", "outputs": ["pdf"]}}, "unknown format 'pdf'"),
        ({"payload": {"path": "reports/daily.ipynb"}, "options": {"idempotencyKey": "k"}}, "cannot set 'idempotencyKey'"),
        ({"payload": {"path": "reports/daily.ipynb"}, "options": {"delay": "1h"}}, "cannot set 'delay'"),
        ({"payload": {"path": "reports/daily.ipynb"}, "options": {"maxAttempts": 0}}, "maxAttempts"),
    ],
)
async def test_a_schedule_with_a_payload_run_notebook_refuses_is_a_400(
    jp_fetch: Any, polaris: Any, jp_root_dir: Path, body: dict[str, Any], words: str
) -> None:
    report_notebook(jp_root_dir)
    status, error = await call(
        jp_fetch, "schedules", method="POST", body={"task": "run-notebook", "cron": "0 6 * * *", **body}
    )
    assert status == 400 and words in error["message"], error
    _, listing = await call(jp_fetch, "schedules")
    assert not [s for s in listing["data"] if s["taskId"] == "run-notebook"]  # nothing half-created


async def test_a_run_notebook_trigger_with_a_bad_payload_is_a_400_and_creates_no_run(
    jp_fetch: Any, polaris: Any, jp_root_dir: Path
) -> None:
    report_notebook(jp_root_dir)
    (jp_root_dir / "notes.txt").write_text("not a notebook")
    for payload, words in (
        ({"path": "notes.txt"}, "'notes.txt' is not a notebook"),
        ({"path": "reports/daily.ipynb", "kernel": "no-such-kernel"}, "kernel 'no-such-kernel' is not installed"),
        ({"path": "../outside.ipynb"}, "path"),
    ):
        status, error = await call(jp_fetch, "tasks", "run-notebook", "trigger", method="POST", body={"payload": payload})
        assert status == 400 and words in error["message"], (payload, error)
    status, error = await call(
        jp_fetch, "tasks", "run-notebook", "batch", method="POST",
        body={"items": [{"payload": {"path": "reports/daily.ipynb"}}, {"payload": {"path": "notes.txt"}}]},
    )
    assert status == 400 and error["message"].startswith("items[1]: 'notes.txt' is not a notebook"), error
    _, runs = await call(jp_fetch, "runs", params={"task": "run-notebook"})
    assert runs["data"] == []  # nothing was created, not even the good item of the batch
