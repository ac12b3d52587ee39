"""Notebooks as background jobs in a real JupyterLab + Chromium: "Run as Background Job…" from
the file browser's context menu opens a dialog prefilled from the notebook's ``parameters``
cell; Run starts a run-notebook run with the edited parameters, the run detail shows per-cell
progress and opens the executed notebook and its HTML in JupyterLab. With a cron, the dialog
creates a schedule (a refused time zone reopens it with everything typed). A running notebook
shows "cell k / total", then the failing cell's error. The notebook toolbar opens the same
dialog. Screenshots go to test-artifacts/."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.tasks.conftest import write_notebook
from tests.ui.conftest import LabServer
from tests.ui.test_notebook_panel import wait_kernel_idle
from tests.ui.test_sidebar_smoke import ALLOWED_ERRORS, open_lab, open_sidebar

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MENU_ITEM = "Run as Background Job…"
#: The exported HTML in JupyterLab's (untrusted, sandboxed) HTML viewer: its scripts are blocked
#: and its MathJax CDN is unreachable offline; both are logged by the browser.
HTML_VIEWER_ERRORS = (r"Blocked script execution in 'blob:", r"cdnjs\.cloudflare\.com")


def notebook_runs(lab_server: LabServer) -> list[dict[str, Any]]:
    status, page = lab_server.get("/polaris/api/v1/runs?task=run-notebook")
    assert status == 200
    return list(page["data"])


def open_job_dialog_from_file_browser(page: Any, name: str) -> Any:
    item = page.locator('.jp-DirListing-item[data-file-type="notebook"]', has_text=name)
    item.wait_for(timeout=30_000)
    item.click(button="right")
    page.get_by_role("menuitem", name=MENU_ITEM).click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Cron schedule").wait_for(timeout=15_000)
    return dialog


def test_context_menu_runs_a_notebook_with_its_parameters_and_opens_the_outputs(
    page: Any, lab_server: LabServer, artifacts_dir: Path
) -> None:
    write_notebook(lab_server.root, "daily.ipynb", "print(f'{city}: {n * 2}')", parameters="n = 1  # how many\ncity = 'Paris'")
    open_lab(page, lab_server)
    dialog = open_job_dialog_from_file_browser(page, "daily.ipynb")

    # Prefilled from the parameters cell (values as JSON), with the cell's comment as a hint.
    n, city = dialog.get_by_label("Value of n"), dialog.get_by_label("Value of city")
    assert (n.input_value(), city.input_value()) == ("1", '"Paris"')
    assert "how many" in dialog.inner_text()
    assert dialog.get_by_role("checkbox", name="HTML").is_checked()
    n.fill("21")
    city.fill("Zürich")  # plain text is sent as a string
    dialog.get_by_label("Attempts", exact=True).fill("1")
    page.screenshot(path=str(artifacts_dir / "notebook-job-dialog.png"))
    dialog.get_by_role("button", name="Run", exact=True).click()

    # The sidebar opens on the run; its notebook section fills up cell by cell.
    sidebar = page.locator("#polaris-sidebar")
    progress = sidebar.locator(".pj-run-detail .pj-notebook-progress")
    progress.wait_for(timeout=30_000)
    (run,) = notebook_runs(lab_server)
    assert run["payload"] == {"path": "daily.ipynb", "outputs": ["ipynb", "html"], "parameters": {"n": 21, "city": "Zürich"}}
    assert run["maxAttempts"] == 1
    count = progress.locator(".pj-notebook-count")
    page.wait_for_function(
        "() => document.querySelector('#polaris-sidebar .pj-notebook-count')?.innerText === '3 / 3 cells'", timeout=120_000
    )
    assert count.inner_text() == "3 / 3 cells"
    assert progress.get_by_role("progressbar", name="Notebook progress").get_attribute("aria-valuenow") == "3"
    assert progress.locator(".pj-notebook-cell-ok").count() == 3
    page.screenshot(path=str(artifacts_dir / "notebook-job-run-detail.png"))

    # The outputs (in the hidden .polaris/jobs/<run>/) open in JupyterLab's own viewers.
    progress.get_by_role("button", name="Open executed notebook").click()
    output = page.locator(".jp-NotebookPanel .jp-OutputArea-output", has_text="Zürich: 42")
    output.wait_for(timeout=30_000)
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")
    assert "daily.ipynb" in tab.inner_text()
    panel = page.locator(".jp-NotebookPanel", has=page.locator(".jp-OutputArea-output", has_text="Zürich: 42"))
    assert "read-only" in panel.locator(".jp-NotebookPanel-toolbar").inner_text()
    assert panel.locator(".pj-notebook-job-button").count() == 0  # an output is not a job to run
    page.screenshot(path=str(artifacts_dir / "notebook-job-executed-notebook.png"))
    progress.get_by_role("button", name="Open HTML").click()
    page.frame_locator(".jp-HTMLViewer iframe").get_by_text("Zürich: 42").wait_for(timeout=30_000)
    page.screenshot(path=str(artifacts_dir / "notebook-job-html.png"))
    assert not page.polaris_log.unexpected((*ALLOWED_ERRORS, *HTML_VIEWER_ERRORS))


def test_a_cron_in_the_dialog_creates_a_schedule_and_a_refusal_keeps_what_was_typed(
    page: Any, lab_server: LabServer, artifacts_dir: Path
) -> None:
    write_notebook(lab_server.root, "weekly.ipynb", "print(n)", parameters="n = 1")
    open_lab(page, lab_server)
    dialog = open_job_dialog_from_file_browser(page, "weekly.ipynb")
    dialog.get_by_label("Value of n").fill("5")
    dialog.get_by_label("Cron schedule").fill("0 6 * * 1")
    dialog.get_by_label("Time zone").fill("Mars/Olympus")
    dialog.get_by_role("button", name="Schedule", exact=True).click()  # the button says what it does

    # Refused by the server: the dialog comes back with the reason and every field as typed.
    dialog = page.get_by_role("dialog")
    alert = dialog.get_by_role("alert")
    alert.wait_for(timeout=15_000)
    assert "unknown time zone 'Mars/Olympus'" in alert.inner_text()
    assert dialog.get_by_label("Value of n").input_value() == "5"
    assert dialog.get_by_label("Cron schedule").input_value() == "0 6 * * 1"
    page.screenshot(path=str(artifacts_dir / "notebook-job-schedule-refused.png"))
    dialog.get_by_label("Time zone").fill("Europe/Paris")
    dialog.get_by_role("button", name="Schedule", exact=True).click()

    # The sidebar shows the Schedules tab with the new schedule and its payload.
    row = page.locator("#polaris-sidebar .pj-schedule-row", has_text="run-notebook")
    row.wait_for(timeout=15_000)
    assert "weekly.ipynb · n=5" in row.locator(".pj-schedule-payload-summary").inner_text()
    status, listing = lab_server.get("/polaris/api/v1/schedules")
    (schedule,) = [s for s in listing["data"] if s["taskId"] == "run-notebook"]
    assert (schedule["cron"], schedule["timezone"]) == ("0 6 * * 1", "Europe/Paris")
    assert schedule["payload"] == {"path": "weekly.ipynb", "outputs": ["ipynb", "html"], "parameters": {"n": 5}}
    assert not notebook_runs(lab_server) or all(r["payload"]["path"] != "weekly.ipynb" for r in notebook_runs(lab_server))
    page.screenshot(path=str(artifacts_dir / "notebook-job-schedule.png"))

    # The Schedules form takes a payload too; JSON that does not parse is refused in the form.
    form = page.locator("#polaris-sidebar .pj-schedule-form")
    form.locator("select.pj-schedule-task").select_option("run-notebook")
    form.get_by_label("Cron expression").fill("30 7 * * *")
    form.get_by_label("Payload (JSON)").fill("{'path': 'weekly.ipynb'}")
    form.get_by_role("button", name="Add schedule").click()
    error = form.locator(".pj-schedule-error")
    error.wait_for(state="visible", timeout=5_000)
    assert "not valid JSON" in error.inner_text() and "double quotes" in error.inner_text()
    form.get_by_label("Payload (JSON)").fill('{"path": "weekly.ipynb", "parameters": {"n": 8}}')
    form.get_by_role("button", name="Add schedule").click()
    page.locator("#polaris-sidebar .pj-schedule-payload-summary", has_text="weekly.ipynb · n=8").wait_for(timeout=15_000)
    page.screenshot(path=str(artifacts_dir / "notebook-job-schedules-form.png"))
    assert not page.polaris_log.unexpected((*ALLOWED_ERRORS, r"status of 400"))


def test_per_cell_progress_then_the_failing_cells_error(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    go = lab_server.root / "go"
    write_notebook(
        lab_server.root,
        "stepwise.ipynb",
        "import pathlib, time\nwhile not pathlib.Path('go').exists():\n    time.sleep(0.05)",
        "if fail:\n    raise ValueError('boom at the end')",
        parameters="fail = False",
    )
    status, started = lab_server.request(
        "POST", "/polaris/api/v1/tasks/run-notebook/trigger",
        {"payload": {"path": "stepwise.ipynb", "parameters": {"fail": True}, "outputs": ["ipynb", "html"]},
         "options": {"maxAttempts": 1}},
    )
    assert status == 200, started
    open_lab(page, lab_server)
    sidebar = open_sidebar(page)
    sidebar.locator(".pj-tab-runs").click()
    sidebar.locator(f'.pj-run-row[data-run-id="{started["id"]}"]').click()
    progress = sidebar.locator(".pj-run-detail .pj-notebook-progress")
    progress.wait_for(timeout=30_000)

    # Waiting in cell 2 (parameters, injected parameters, wait, raise): "cell 3 / 4", two done.
    page.wait_for_function(
        "() => document.querySelector('#polaris-sidebar .pj-notebook-count')?.innerText === 'cell 3 / 4'", timeout=120_000
    )
    assert progress.locator(".pj-notebook-cell-ok").count() == 2
    assert "Outputs go to .polaris/jobs/" in progress.inner_text()
    page.screenshot(path=str(artifacts_dir / "notebook-job-progress-running.png"))

    go.write_text("")
    failure = progress.locator(".pj-notebook-error")
    failure.wait_for(timeout=60_000)
    assert "Cell 3 (id " in failure.inner_text() and "raised ValueError: boom at the end" in failure.inner_text()
    assert "ValueError" in failure.locator(".pj-notebook-traceback").inner_text()
    page.wait_for_function(
        "() => document.querySelector('#polaris-sidebar .pj-notebook-count')?.innerText === 'stopped at cell 4 / 4'",
        timeout=30_000,
    )
    assert progress.locator(".pj-notebook-cell-error").count() == 1
    assert progress.get_by_role("button", name="Open partial notebook").is_visible()
    assert progress.get_by_role("button", name="Open HTML").is_visible()
    page.screenshot(path=str(artifacts_dir / "notebook-job-progress-failed.png"))
    assert not page.polaris_log.unexpected(ALLOWED_ERRORS)


def test_the_notebook_toolbar_opens_the_dialog_for_that_notebook(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    write_notebook(lab_server.root, "toolbar.ipynb", "print(size)", parameters="size = 10")
    page.goto(lab_server.lab_url("lab/workspaces/toolbar-job/tree/toolbar.ipynb"), wait_until="domcontentloaded")
    page.locator(".jp-NotebookPanel .jp-CodeCell").first.wait_for(timeout=60_000)
    wait_kernel_idle(lab_server, "toolbar.ipynb")
    page.locator(".jp-NotebookPanel-toolbar").get_by_role("button", name="Run as job").click()
    dialog = page.get_by_role("dialog")
    assert dialog.get_by_label("Value of size").input_value() == "10"
    assert "toolbar.ipynb" in dialog.inner_text()
    dialog.get_by_label("Value of size").fill("12")
    dialog.get_by_role("button", name="Run", exact=True).click()
    deadline = time.monotonic() + 30
    while not [r for r in notebook_runs(lab_server) if r["payload"]["path"] == "toolbar.ipynb"] and time.monotonic() < deadline:
        time.sleep(0.2)
    (run,) = [r for r in notebook_runs(lab_server) if r["payload"]["path"] == "toolbar.ipynb"]
    assert run["payload"]["parameters"] == {"size": 12}
    page.locator("#polaris-sidebar .pj-run-detail .pj-notebook-progress").wait_for(timeout=30_000)
    page.screenshot(path=str(artifacts_dir / "notebook-job-toolbar.png"))
    assert not page.polaris_log.unexpected(ALLOWED_ERRORS)
