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


def assert_test_task_loaded(lab_server: LabServer) -> None:
    status, tasks = lab_server.get("/polaris/api/v1/tasks")
    assert status == 200 and "ui-sleepy" in {t["id"] for t in tasks.get("tasks", [])}, (
        f"the server did not load the test task (GET tasks -> {status}): {lab_server.log_tail(600)}"
    )


def tags_of(lab_server: LabServer, run_id: str) -> list[str]:
    return list(lab_server.get(f"/polaris/api/v1/runs/{run_id}")[1]["tags"])


def run_detail_status(detail: Any) -> str:
    return str(detail.locator(".pj-run-header .pj-badge").inner_text())


def test_cancel_and_replay_a_running_job(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    assert_test_task_loaded(lab_server)
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
    assert "ui-test" in str(row.text_content())  # the Tags cell (hidden at the side panel's width)

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
    assert "ui-test" in detail.locator(".pj-kv").inner_text()
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


def computed(page: Any, selector: str, prop: str) -> str:
    return str(page.evaluate(f"() => getComputedStyle(document.querySelector({selector!r}))[{prop!r}]"))


def test_dashboard_tab_has_room_for_every_column(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    """The side panel shows the four scanning columns; the tab shows all, and the run detail
    lays its sections side by side."""
    assert_test_task_loaded(lab_server)
    batch = [{"payload": {"seconds": 0}, "options": {"tags": ["nightly", f"part-{n}"]}} for n in range(3)]
    status, triggered = lab_server.request("POST", "/polaris/api/v1/tasks/ui-sleepy/batch", {"items": batch})
    assert status == 200, triggered
    status, started = lab_server.request(
        "POST", "/polaris/api/v1/tasks/ui-sleepy/trigger", {"payload": {"seconds": 90}, "options": {"tags": ["wide-view"]}}
    )
    assert status == 200, started
    run_id = started["id"]
    try:
        open_lab(page, lab_server)
        sidebar = open_sidebar(page)
        sidebar.locator(".pj-tab-runs").click()
        sidebar.locator(f'.pj-run-row[data-run-id="{run_id}"]').wait_for(timeout=15_000)
        narrow = "#polaris-sidebar .pj-runs-table thead th:nth-child(6)"
        assert computed(page, narrow, "display") == "none", "the Tags column is hidden in the narrow side panel"
        assert computed(page, "#polaris-sidebar .pj-runs-table thead th:nth-child(3)", "display") != "none"

        sidebar.locator("button.pj-open-dashboard").click()
        dashboard = page.locator("#polaris-runs-dashboard")
        dashboard.wait_for(state="visible", timeout=10_000)
        tab = page.locator('#jp-main-dock-panel .lm-TabBar-tab:has-text("Polaris Runs")')
        assert tab.count() == 1
        row = dashboard.locator(f'.pj-run-row[data-run-id="{run_id}"]')
        row.wait_for(timeout=15_000)
        assert "wide-view" in row.inner_text(), "every column, tags included, fits in the tab"
        assert computed(page, "#polaris-runs-dashboard .pj-runs-table thead th:nth-child(6)", "display") != "none"
        page.screenshot(path=str(artifacts_dir / "runs-dashboard-history.png"))

        # The tag filter: one of the batch's runs by its tag, then all again.
        part_1 = next(r["id"] for r in triggered["runs"] if r["id"] != run_id and tags_of(lab_server, r["id"]) == ["nightly", "part-1"])
        dashboard.locator("input.pj-tag-filter").fill("part-1")
        page.wait_for_function(
            f"() => {{ const rows = document.querySelectorAll('#polaris-runs-dashboard .pj-run-row');"
            f" return rows.length === 1 && rows[0].dataset.runId === '{part_1}'; }}",
            timeout=10_000,
        )
        dashboard.locator("input.pj-tag-filter").fill("")
        row.wait_for(timeout=10_000)

        # The pop-out button again activates the same tab instead of opening a second one.
        sidebar.locator("button.pj-open-dashboard").click()
        assert page.locator("#polaris-runs-dashboard").count() == 1

        row.click()
        detail = dashboard.locator(".pj-run-detail")
        detail.locator(".pj-run-header").wait_for(timeout=10_000)
        assert run_detail_status(detail) == "executing"
        assert computed(page, "#polaris-runs-dashboard .pj-run-detail-body", "display") == "grid"
        page.screenshot(path=str(artifacts_dir / "runs-dashboard-tab.png"))

        detail.locator("button.pj-cancel-run").click()
        page.wait_for_function(
            "() => document.querySelector('#polaris-runs-dashboard .pj-run-header .pj-badge').innerText === 'canceled'",
            timeout=15_000,
        )
        # The sidebar's table heard the same event over its own stream.
        page.wait_for_function(
            f"() => document.querySelector('#polaris-sidebar .pj-run-row[data-run-id=\"{run_id}\"]')"
            ".innerText.includes('canceled')",
            timeout=15_000,
        )
        tab.locator(".lm-TabBar-tabCloseIcon").click()
        dashboard.wait_for(state="detached", timeout=10_000)
        assert not page.polaris_log.unexpected(ALLOWED_ERRORS)
    finally:
        lab_server.request("POST", f"/polaris/api/v1/runs/{run_id}/cancel", {})


def test_schedules_tab_adds_and_deletes_a_schedule(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    """Schedules: the built-in cleanup (declared in code), a bad cron refused with the reason,
    a new schedule with its next run in its time zone, and Delete."""
    assert_test_task_loaded(lab_server)
    open_lab(page, lab_server)
    sidebar = open_sidebar(page)
    sidebar.locator(".pj-tab-runs").click()
    sidebar.locator("button.pj-open-dashboard").click()
    dashboard = page.locator("#polaris-runs-dashboard")
    dashboard.locator(".pj-subtab-schedules").click()
    cleanup = dashboard.locator('.pj-schedule-row:has(.pj-run-task:has-text("cleanup"))')
    cleanup.wait_for(timeout=15_000)
    assert "code" in cleanup.locator(".pj-tag").inner_text() and "0 2 * * *" in cleanup.inner_text()

    form = dashboard.locator(".pj-schedule-form")
    form.locator("select.pj-schedule-task").select_option("ui-sleepy")
    form.locator("input.pj-schedule-cron").fill("every tuesday")
    form.locator("button.pj-add-schedule").click()
    error = form.locator(".pj-schedule-error")
    error.wait_for(state="visible", timeout=10_000)
    assert "cron" in error.inner_text().lower()

    form.locator("input.pj-schedule-cron").fill("*/5 * * * *")
    form.locator("input.pj-schedule-zone").fill("Europe/Paris")
    form.locator("button.pj-add-schedule").click()
    row = dashboard.locator('.pj-schedule-row:has(.pj-run-task:text-is("ui-sleepy"))')
    row.wait_for(timeout=10_000)
    assert error.is_hidden()
    assert "*/5 * * * * Europe/Paris" in row.inner_text()
    assert row.locator("td").nth(2).inner_text() not in ("", "—", "paused")  # the next run
    status, listed = lab_server.get("/polaris/api/v1/schedules")
    created = next(s for s in listed["data"] if s["taskId"] == "ui-sleepy")
    assert created["timezone"] == "Europe/Paris" and created["nextRun"] and not created["declarative"]
    page.screenshot(path=str(artifacts_dir / "runs-schedules.png"))

    row.locator("button.pj-delete-schedule").click()
    row.wait_for(state="detached", timeout=10_000)
    status, listed = lab_server.get("/polaris/api/v1/schedules")
    assert "ui-sleepy" not in {s["taskId"] for s in listed["data"]}
    assert not page.polaris_log.unexpected((*ALLOWED_ERRORS, r"status of 400 .*@ \S*/polaris/api/v1/schedules"))
