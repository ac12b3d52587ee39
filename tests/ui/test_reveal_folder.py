"""A generated project in JupyterLab (issue 13 item 9): in the run's progress view, a generated
file's path opens the file, and `Show in file browser` takes the file browser to the project's
folder (its breadcrumbs end in the folder, its listing shows the generated files). Real
``jupyter lab`` + Chromium, scripted generation model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import LabServer
from tests.ui.test_sidebar_smoke import ALLOWED_ERRORS, open_lab, open_sidebar

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: Each generation step writes one file (ScriptedGeneration); no scripted replies.
MODEL_SCRIPT: list[dict[str, Any]] = []
MODEL_ARGS = ["--generation"]


def generate(lab_server: LabServer, folder: str, timeout_s: float = 90) -> str:
    """Start a generation through REST and wait until it completed; returns the run id."""
    status, started = lab_server.request("POST", "/polaris/api/v1/generate", {
        "description": "A small package that converts temperatures", "kind": "python-package", "path": folder, "overwrite": False,
    })
    assert status in (200, 201, 202) and started, f"POST generate -> {status}"
    run_id = started["runId"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _, run = lab_server.get(f"/polaris/api/v1/runs/{run_id}")
        if run and run.get("status") == "COMPLETED":
            return str(run_id)
        assert not run or run.get("status") not in ("FAILED", "CRASHED", "CANCELED", "TIMED_OUT"), run
        time.sleep(0.5)
    raise AssertionError(f"the generation {run_id} did not complete")


def test_generated_folder_is_revealed_and_files_open(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    run_id = generate(lab_server, "temps/")
    open_lab(page, lab_server)
    sidebar = open_sidebar(page)
    sidebar.locator(".pj-tab-runs").click()
    row = sidebar.locator(f'.pj-run-row[data-run-id="{run_id}"]')
    row.wait_for(timeout=15_000)
    row.click()
    progress = sidebar.locator(".pj-run-progress .pj-progress")
    progress.wait_for(state="visible", timeout=15_000)

    # A generated file's path opens it in JupyterLab.
    path_link = progress.get_by_role("link", name="Open temps/pyproject.toml")
    path_link.wait_for(timeout=10_000)
    page.screenshot(path=str(artifacts_dir / "reveal-folder-progress.png"))
    path_link.click()
    page.locator('#jp-main-dock-panel .lm-TabBar-tab .lm-TabBar-tabLabel:text-is("pyproject.toml")').wait_for(timeout=15_000)

    # Show in file browser: the browser is shown, in the project's folder.
    progress.get_by_role("button", name="Show in file browser").click()
    crumbs = page.locator(".jp-FileBrowser .jp-BreadCrumbs")
    crumbs.wait_for(state="visible", timeout=10_000)
    page.wait_for_function(
        "() => { const items = [...document.querySelectorAll('.jp-FileBrowser .jp-BreadCrumbs-item')];"
        " return items.length > 0 && items[items.length - 1].textContent.trim() === 'temps'; }",
        timeout=10_000,
    )
    listing = page.locator(".jp-FileBrowser .jp-DirListing-content")
    listing.locator(".jp-DirListing-item", has_text="pyproject.toml").wait_for(timeout=10_000)
    generated = {p.name for p in (lab_server.root / "temps").iterdir() if not p.name.startswith(".")}
    shown = {t.strip() for t in listing.locator(".jp-DirListing-itemText").all_inner_texts()}
    assert generated <= shown, (generated, shown)
    page.screenshot(path=str(artifacts_dir / "reveal-folder-file-browser.png"))
    assert not page.polaris_log.unexpected(ALLOWED_ERRORS)
