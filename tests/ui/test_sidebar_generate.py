"""Generate a project from the sidebar: the palette's "Generate Project…" dialog starts the run,
the Runs view opens its detail, and the progress view shows steps and files live until the run
completes; the files are on disk. Real JupyterLab + Chromium, scripted generation model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import LabServer
from tests.ui.test_sidebar_smoke import ALLOWED_ERRORS, open_lab, open_sidebar

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: The model process answers each generation step with one writeFile (see ScriptedGeneration);
#: no scripted replies, which would take precedence over the generation responder.
MODEL_SCRIPT: list[dict[str, Any]] = []
MODEL_ARGS = ["--generation"]


def test_generate_project_from_the_palette(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    open_lab(page, lab_server)
    open_sidebar(page)
    page.locator('.lm-MenuBar-itemLabel:text-is("View")').click()
    page.locator('.lm-Menu-itemLabel:text-is("Activate Command Palette")').click()
    palette_input = page.locator(".lm-CommandPalette-input")
    palette_input.wait_for(state="visible", timeout=10_000)
    palette_input.fill("Polaris: Generate")
    page.locator(".lm-CommandPalette-item").filter(has_text="Generate Project").first.click()

    form = page.locator(".jp-Dialog .pj-generate-form")
    form.wait_for(state="visible", timeout=10_000)
    form.locator("textarea").fill("A small package that converts temperatures")
    form.locator("select").select_option("python-package")
    form.locator("input[type=text]").fill("temps/")
    page.locator(".jp-Dialog button.jp-mod-accept").click()
    form.wait_for(state="detached", timeout=10_000)

    # The Runs view opens the new run; its progress view follows the steps live.
    progress = page.locator("#polaris-sidebar .pj-run-progress .pj-progress")
    progress.wait_for(state="visible", timeout=20_000)
    try:
        page.wait_for_function(
            "() => { const b = document.querySelector('#polaris-sidebar .pj-run-header .pj-badge');"
            " return b && /completed/i.test(b.innerText); }",
            timeout=90_000,
        )
    finally:
        page.screenshot(path=str(artifacts_dir / "sidebar-generate.png"))
    # Timestamps and duration come from the server after the final status: they must show up.
    page.wait_for_function(
        "() => /Finished/.test(document.querySelector('#polaris-sidebar .pj-view-runs').innerText)",
        timeout=10_000,
    )
    steps = progress.locator(".pj-progress-steps li")
    assert steps.count() == 6, steps.all_inner_texts()
    assert all("finished" in text or "skipped" in text for text in steps.all_inner_texts()), steps.all_inner_texts()
    files = [t.strip() for t in progress.locator(".pj-progress-files li").all_inner_texts()]
    assert any("pyproject.toml" in f for f in files), files
    assert "6/6" in progress.locator(".pj-progress-count").inner_text().replace(" ", "")

    written = sorted(p.relative_to(lab_server.root).as_posix() for p in (lab_server.root / "temps").rglob("*") if p.is_file())
    assert "temps/pyproject.toml" in written and len(written) >= 4, written
    assert all((lab_server.root / p).stat().st_size > 0 for p in written)
    errors = page.polaris_log.unexpected(ALLOWED_ERRORS)
    assert not errors, f"console/page errors: {errors}"
