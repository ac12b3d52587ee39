"""The runs dashboard tells the truth (issue 11): a task module that failed to import is named
with its error and traceback while the other tasks work; chart text keeps one size in the
sidebar and in a wide tab; the code-declared cleanup schedule offers no Delete (the server
refuses it with the reason) and "Next run" names its time zone; a finished run's disabled
Cancel is not drawn as a red, live action."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_until
from tests.ui.conftest import LabServer
from tests.ui.test_sidebar_smoke import ALLOWED_ERRORS, open_lab, open_sidebar

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TASK_MODULE = '''
from __future__ import annotations

from polaris_jupyter.jobs import task


@task(id="ui-quick")
async def quick(payload, ctx):
    return {"ok": True}
'''

BROKEN_TASK_MODULE = '''
from polaris_jupyter.jobs import task

RETRIES = 1 + "2"  # a TypeError at import


@task(id="ui-never")
async def never(payload, ctx):
    return None
'''

API = "/polaris/api/v1"


def run_quick(lab_server: LabServer, count: int = 1) -> list[str]:
    status, answer = lab_server.request("POST", f"{API}/tasks/ui-quick/batch", {"items": [{"payload": {}}] * count})
    assert status == 200, f"ui-quick did not load ({status}): {lab_server.log_tail(800)}"
    ids = [r["id"] for r in answer["runs"]]
    wait_until(lambda: all(run_status(lab_server, r) == "COMPLETED" for r in ids), 30, f"runs {ids} completed", poll_s=0.2)
    return ids


def run_status(lab_server: LabServer, run_id: str) -> str:
    return str(lab_server.get(f"{API}/runs/{run_id}")[1]["status"])


def open_dashboard(page: Any, lab_server: LabServer) -> tuple[Any, Any]:
    open_lab(page, lab_server)
    sidebar = open_sidebar(page)
    sidebar.locator(".pj-tab-runs").click()
    sidebar.locator("button.pj-open-dashboard").click()
    dashboard = page.locator("#polaris-runs-dashboard")
    dashboard.wait_for(state="visible", timeout=10_000)
    return sidebar, dashboard


def test_a_task_module_that_failed_to_import_is_named_with_its_traceback(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    status, health = lab_server.get(f"{API}/health")
    assert status == 200 and health["ok"] is False
    assert [e["module"] for e in health["taskModuleErrors"]] == ["ui_broken_tasks"]
    run_quick(lab_server)  # the other module's task works

    sidebar, dashboard = open_dashboard(page, lab_server)
    for view in (sidebar, dashboard):
        banner = view.locator(".pj-task-module-error")
        banner.wait_for(timeout=15_000)
        text = banner.inner_text()
        assert "Task module ui_broken_tasks failed to import: TypeError" in text and "its tasks are missing" in text
    banner = dashboard.locator(".pj-task-module-error")
    traceback = banner.locator("details.pj-health-traceback")
    assert not traceback.locator("pre").is_visible()
    traceback.locator("summary").click()
    assert "ui_broken_tasks.py" in traceback.locator("pre").inner_text()
    assert 'RETRIES = 1 + "2"' in traceback.locator("pre").inner_text()
    page.screenshot(path=str(artifacts_dir / "runs-task-module-error.png"))
    assert not page.polaris_log.unexpected(ALLOWED_ERRORS)


LABEL_HEIGHTS_JS = """(root) => [...root.querySelectorAll('svg.pj-chart text.pj-chart-label')]
  .map(t => t.getBoundingClientRect().height).filter(h => h > 0)"""
CHART_FIT_JS = """(root) => { const svg = root.querySelector('svg.pj-chart'); const body = root.querySelector('.pj-metrics-body');
  const style = getComputedStyle(body);
  return { chart: svg.getBoundingClientRect().width,
           room: body.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) }; }"""


def chart_text_heights(view: Any) -> list[float]:
    view.locator("svg.pj-chart text.pj-chart-label").first.wait_for(timeout=15_000)
    heights: list[float] = view.evaluate(LABEL_HEIGHTS_JS)
    assert heights
    return heights


def test_chart_text_keeps_its_size_in_the_sidebar_and_in_a_tab(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    run_quick(lab_server, count=3)
    sidebar, dashboard = open_dashboard(page, lab_server)
    sidebar.locator(".pj-subtab-metrics").click()
    dashboard.locator(".pj-subtab-metrics").click()
    in_sidebar = chart_text_heights(sidebar)
    in_tab = chart_text_heights(dashboard)
    # 10 px text has a box of about 12-13 px; scaled with the panel it was 40 px in a tab.
    for heights in (in_sidebar, in_tab):
        assert 8 <= min(heights) and max(heights) <= 16, heights
    fit = dashboard.evaluate(CHART_FIT_JS)
    assert abs(fit["chart"] - fit["room"]) <= 2, f"the chart fills the tab's width: {fit}"
    page.screenshot(path=str(artifacts_dir / "runs-metrics-tab.png"))

    # Narrower window: the tab's charts are drawn again at the new width, text unchanged.
    page.set_viewport_size({"width": 900, "height": 900})
    page.wait_for_function(
        f"() => {{ const f = ({CHART_FIT_JS})(document.querySelector('#polaris-runs-dashboard'));"
        " return f.room < 800 && Math.abs(f.chart - f.room) <= 2; }",
        timeout=10_000,
    )
    assert max(chart_text_heights(dashboard)) <= 16
    page.screenshot(path=str(artifacts_dir / "runs-metrics-narrow.png"))
    assert not page.polaris_log.unexpected(ALLOWED_ERRORS)


def test_declared_schedule_cannot_be_deleted_and_next_run_names_its_zone(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    status, _ = lab_server.request("DELETE", f"{API}/schedules/cleanup-daily")
    assert status == 409, "the server refuses to delete a schedule declared in code"
    status, created = lab_server.request("POST", f"{API}/schedules", {"task": "ui-quick", "cron": "0 9 * * *", "timezone": "Asia/Tokyo"})
    assert status == 201, created
    try:
        _, listed = lab_server.get(f"{API}/schedules")
        cleanup_zone = next(s["timezone"] for s in listed["data"] if s["id"] == "cleanup-daily")
        _, dashboard = open_dashboard(page, lab_server)
        dashboard.locator(".pj-subtab-schedules").click()
        cleanup = dashboard.locator('.pj-schedule-row[data-schedule-id="cleanup-daily"]')
        cleanup.wait_for(timeout=15_000)
        assert cleanup.locator("button.pj-delete-schedule").count() == 0, "no Delete for a schedule declared in code"
        note = cleanup.locator(".pj-schedule-in-code")
        assert "declared again when the server starts" in (note.get_attribute("title") or "")
        assert cleanup.locator("td").nth(2).inner_text().endswith(cleanup_zone)

        mine = dashboard.locator(f'.pj-schedule-row[data-schedule-id="{created["id"]}"]')
        next_run = mine.locator("td").nth(2).inner_text()
        assert next_run.endswith("Asia/Tokyo") and "09:00" in next_run, next_run
        assert mine.locator("button.pj-delete-schedule").is_visible()
        page.screenshot(path=str(artifacts_dir / "runs-schedules-zones.png"))
    finally:
        lab_server.request("DELETE", f"{API}/schedules/{created['id']}")
    assert not page.polaris_log.unexpected(ALLOWED_ERRORS)


COLOR_JS = "(el) => getComputedStyle(el).borderColor"


def test_a_finished_runs_cancel_is_not_drawn_as_a_live_action(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    (run_id,) = run_quick(lab_server)
    _, dashboard = open_dashboard(page, lab_server)
    dashboard.locator(f'.pj-run-row[data-run-id="{run_id}"]').click()
    detail = dashboard.locator(".pj-run-detail")
    detail.locator(".pj-run-header .pj-badge:text-is('completed')").wait_for(timeout=15_000)
    cancel = detail.locator("button.pj-cancel-run")
    assert cancel.is_disabled()
    replay = detail.locator("button.pj-replay-run")
    assert cancel.evaluate(COLOR_JS) == replay.evaluate(COLOR_JS), "a disabled Cancel has the neutral outline, not red"
    assert "nothing to cancel" in (cancel.get_attribute("title") or "")
    page.screenshot(path=str(artifacts_dir / "runs-detail-finished.png"))
