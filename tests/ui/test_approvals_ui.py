"""Approvals in a real JupyterLab + Chromium, against the scripted model: in mode ``ask`` a
writeFile waits on its card with the diff and the buttons ``Approve``, ``Deny`` and ``Approve
all in this run``; the Runs view shows the run WAITING; clicking Approve writes the file and the
answer finishes. The header's permission mode select saves the conversation's mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_until
from tests.ui.conftest import LabServer
from tests.ui.test_sidebar_chat import send
from tests.ui.test_sidebar_smoke import ALLOWED_ERRORS, open_lab, open_sidebar

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PERMISSION_MODE = "ask"
MODEL_SCRIPT: list[dict[str, Any]] = [
    {"text": "I will write it.", "tool_calls": [{"name": "writeFile", "arguments": {"path": "approved.txt", "content": "yes, approved\n"}}]},
    {"text": "Wrote `approved.txt` once you approved."},
]


def test_approve_on_the_card_writes_the_file(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    open_lab(page, lab_server)
    sidebar = open_sidebar(page)
    mode = sidebar.get_by_role("combobox", name="Permission mode")
    assert mode.input_value() == "ask"
    send(sidebar, "Write approved.txt")

    card = sidebar.locator(".pj-msg-assistant .pj-tool.pj-tool-waiting")
    card.wait_for(timeout=30_000)
    assert card.locator(".pj-badge").inner_text() == "waiting for approval"
    assert "yes, approved" in card.locator(".pj-diff-add").all_inner_texts()[0]
    approve = card.get_by_role("button", name="Approve", exact=True)
    assert card.get_by_role("button", name="Deny", exact=True).is_visible()
    assert card.get_by_role("button", name="Approve all in this run", exact=True).is_visible()
    assert not (lab_server.root / "approved.txt").exists()
    _, pending = lab_server.get("/polaris/api/v1/approvals?status=pending")
    [approval] = pending["data"]
    _, run = lab_server.get(f"/polaris/api/v1/runs/{approval['runId']}")
    assert run["status"] == "WAITING"
    page.screenshot(path=str(artifacts_dir / "approval-card.png"))

    # The Runs view shows the waiting run with its own label.
    sidebar.locator(".pj-tab-runs").click()
    row = sidebar.locator(f'.pj-run-row[data-run-id="{approval["runId"]}"]')
    row.wait_for(timeout=15_000)
    assert row.locator(".pj-run-waiting").count() == 1 and "waiting" in row.inner_text()
    sidebar.locator(".pj-tab-chat").click()

    approve.click()
    sidebar.locator(".pj-msg-assistant.pj-msg-status-completed").wait_for(timeout=30_000)
    assert (lab_server.root / "approved.txt").read_text() == "yes, approved\n"
    done = sidebar.locator(".pj-msg-assistant .pj-tool").first
    assert done.locator(".pj-approval-state").inner_text() == "Approved"
    assert done.get_by_role("button", name="Approve", exact=True).count() == 0
    assert "once you approved" in sidebar.locator(".pj-msg-assistant .pj-msg-body").inner_text()
    page.screenshot(path=str(artifacts_dir / "approval-approved.png"))

    # The header's mode is saved on the conversation.
    mode.select_option("plan")
    conversation_id = approval["conversationId"]

    def saved() -> bool:
        _, conversation = lab_server.get(f"/polaris/api/v1/conversations/{conversation_id}")
        return bool(conversation.get("permissionMode") == "plan")

    wait_until(saved, 15, "the permission mode saved on the conversation")
    assert not page.polaris_log.unexpected(ALLOWED_ERRORS)
