"""The Runs view as a dashboard: a running job appears live, filters narrow the table, the run
detail shows logs and metadata, Cancel cancels it, Replay starts a new run of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import LabServer
from tests.ui.test_sidebar_smoke import ALLOWED_ERRORS, open_lab, open_sidebar

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TASK_MODULE = '''
from __future__ import annotations

import asyncio

from polaris_jupyter.jobs import task


@task(id="ui-sleepy")
async def sleepy(payload, ctx):
    ctx.logger.info("going to sleep", data={"seconds": payload["seconds"]})
    ctx.metadata.set("phase", "sleeping")
    await asyncio.sleep(float(payload["seconds"]))
    return {"slept": payload["seconds"]}
'''


def run_detail_status(detail: Any) -> str:
    return str(detail.locator(".pj-run-header .pj-badge").inner_text())


def test_cancel_and_replay_a_running_job(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    status, tasks = lab_server.get("/polaris/api/v1/tasks")
    if status != 200 or "ui-sleepy" not in {t["id"] for t in tasks.get("tasks", [])}:
        pytest.skip(f"the server did not load the test task (GET tasks -> {status}): {lab_server.log_tail(600)}")
    status, done = lab_server.request("POST", "/polaris/api/v1/tasks/ui-sleepy/trigger", {"payload": {"seconds": 0}})
    assert status == 200, done
    open_lab(page, lab_server)
    sidebar = open_sidebar(page)
    sidebar.locator(".pj-tab-runs").click()
    sidebar.locator(f'.pj-run-row[data-run-id="{done["id"]}"]').wait_for(timeout=15_000)

    # A run triggered while the dashboard is open appears without a reload.
    status, started = lab_server.request(
        "POST", "/polaris/api/v1/tasks/ui-sleepy/trigger", {"payload": {"seconds": 90}, "options": {"tags": ["ui-test"]}}
    )
    assert status == 200, started
    run_id = started["id"]
    row = sidebar.locator(f'.pj-run-row[data-run-id="{run_id}"]')
    row.wait_for(timeout=15_000)
    page.wait_for_function(
        f"() => document.querySelector('.pj-run-row[data-run-id=\"{run_id}\"]').innerText.includes('executing')",
        timeout=15_000,
    )
    assert "ui-test" in row.inner_text()

    # Filters: by status (only the executing run), then back to all.
    sidebar.locator("select.pj-status-filter").select_option("EXECUTING")
    page.wait_for_function("() => document.querySelectorAll('#polaris-sidebar .pj-run-row').length === 1", timeout=10_000)
    assert sidebar.locator(".pj-run-row").get_attribute("data-run-id") == run_id
    sidebar.locator("select.pj-status-filter").select_option("COMPLETED")
    page.wait_for_function(
        f"() => !document.querySelector('.pj-run-row[data-run-id=\"{run_id}\"]')"
        f" && !!document.querySelector('.pj-run-row[data-run-id=\"{done['id']}\"]')",
        timeout=10_000,
    )
    sidebar.locator("select.pj-status-filter").select_option("")
    sidebar.locator("select.pj-task-filter").select_option("ui-sleepy")
    row.wait_for(timeout=10_000)

    row.click()
    detail = sidebar.locator(".pj-run-detail")
    detail.locator(".pj-run-header").wait_for(timeout=10_000)
    assert run_detail_status(detail) == "executing"
    assert "going to sleep" in detail.locator('details[data-section="logs"]').inner_text()
    detail.locator('details[data-section="metadata"] > summary').click()
    assert '"phase": "sleeping"' in detail.locator('details[data-section="metadata"] pre').inner_text()
    page.screenshot(path=str(artifacts_dir / "runs-detail-executing.png"))

    detail.locator("button.pj-cancel-run").click()
    page.wait_for_function(
        "() => document.querySelector('#polaris-sidebar .pj-run-header .pj-badge').innerText === 'canceled'", timeout=15_000
    )
    assert detail.locator("button.pj-cancel-run").is_disabled()
    status, run = lab_server.get(f"/polaris/api/v1/runs/{run_id}")
    assert run["status"] == "CANCELED"
    page.screenshot(path=str(artifacts_dir / "runs-detail-canceled.png"))

    detail.locator("button.pj-replay-run").click()
    page.wait_for_function(
        f"() => {{ const code = document.querySelector('#polaris-sidebar .pj-run-detail .pj-kv code');"
        f" return code && code.innerText !== '{run_id}'; }}",
        timeout=15_000,
    )
    replay_id = sidebar.locator(".pj-run-detail .pj-kv code").first.inner_text()
    assert run_id in sidebar.locator(".pj-run-detail .pj-kv").inner_text()  # "Replay of" links back
    status, replay = lab_server.get(f"/polaris/api/v1/runs/{replay_id}")
    assert replay["replayedFrom"] == run_id
    assert replay["payload"] == {"seconds": 90}
    lab_server.request("POST", f"/polaris/api/v1/runs/{replay_id}/cancel", {})
    assert not page.polaris_log.unexpected(ALLOWED_ERRORS)
