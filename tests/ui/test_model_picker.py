"""The model picker and the key form in a real JupyterLab (Chromium): a key and base URL entered in
the settings make a second provider's models appear in the chat header, the chat is answered by
the model picked there (the scripted server records it), the reply says which model answered
with its tokens and cost, the header lists the workspace rules, and the key is in neither the
page nor the server's log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from polaris_jupyter.testing import Response, ScriptedModelServer
from tests.ui.conftest import LabServer
from tests.ui.test_sidebar_smoke import ALLOWED_ERRORS, open_lab, open_sidebar

pytestmark = [pytest.mark.browser, pytest.mark.slow]

KEY = "sk-ui-form-key-0123456789abcdWXYZ"
MODEL_SCRIPT: list[dict[str, Any]] = [{"text": "answered by the default model"}]


@pytest.fixture(scope="module")
def second_provider() -> Iterator[ScriptedModelServer]:
    """OpenAI, played by a scripted server that answers only with KEY (entered in the form)."""
    server = ScriptedModelServer.start_in_thread(model="picked-small", api_key=KEY)
    server.extra_models = ["picked-large"]
    yield server
    server.stop()


def test_keys_form_and_model_picker(
    page: Any, lab_server: LabServer, second_provider: ScriptedModelServer, artifacts_dir: Path
) -> None:
    (lab_server.root / "AGENTS.md").write_text("Answer in one sentence.\n")
    open_lab(page, lab_server)
    sidebar = open_sidebar(page)
    picker = sidebar.get_by_role("combobox", name="Model")
    picker.wait_for(timeout=20_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#polaris-sidebar .pj-model-picker optgroup')].some(g => g.label === 'Local server')",
        timeout=20_000,
    )
    assert "Default · Local server" in picker.locator("option").first.inner_text()
    rules = sidebar.get_by_role("note", name="Workspace rules")
    page.wait_for_function("() => document.querySelector('#polaris-sidebar .pj-rules-chip').textContent.includes('AGENTS.md')")
    assert rules.inner_text() == "Rules: AGENTS.md"
    assert "AGENTS.md: 23 characters" in (rules.get_attribute("title") or "")

    # The key form: OpenAI's key and base URL, saved on the server.
    sidebar.get_by_role("button", name="Polaris settings").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("OpenAI API key").fill(KEY)
    dialog.get_by_label("OpenAI base URL").fill(second_provider.base_url)
    dialog.get_by_role("button", name="Save OpenAI").click()
    openai = dialog.locator('section[data-provider="openai"]')
    openai.get_by_text("Saved. The next message uses it.").wait_for(timeout=10_000)
    assert "API key: saved here (…WXYZ)" in openai.inner_text()
    assert dialog.get_by_label("OpenAI API key").input_value() == ""  # the key never comes back
    assert "AGENTS.md" in dialog.inner_text()  # the rules, listed in the settings too
    page.screenshot(path=str(artifacts_dir / "settings-keys.png"))
    keys_file = lab_server.base / "keys.json"
    assert keys_file.stat().st_mode & 0o777 == 0o600
    dialog.get_by_role("button", name="Close").click()

    # The picker now lists OpenAI's models; this chat is answered by the one picked.
    page.wait_for_function(
        "() => [...document.querySelectorAll('#polaris-sidebar .pj-model-picker option')].some(o => o.textContent === 'picked-large')",
        timeout=20_000,
    )
    picker.select_option(label="picked-large")
    page.wait_for_function("() => !document.querySelector('#polaris-sidebar .pj-model-picker').disabled")
    second_provider.enqueue(Response(text="Answered by the picked model.", usage={"prompt_tokens": 1200, "completion_tokens": 30}))
    box = sidebar.locator("textarea.pj-chat-input")
    box.click()
    box.fill("Which model are you?")
    box.press("Enter")
    reply = sidebar.locator(".pj-msg-assistant.pj-msg-status-completed")
    reply.wait_for(timeout=30_000)
    assert "Answered by the picked model." in reply.inner_text()
    assert reply.locator(".pj-msg-model").inner_text() == "openai · picked-large"
    assert reply.locator(".pj-msg-usage").inner_text() == "1,230 tokens"
    assert reply.locator(".pj-msg-cost").inner_text() == "$—"  # no price known for this model
    page.wait_for_function("() => document.querySelector('#polaris-sidebar .pj-chat-usage').textContent.includes('1,230')")
    assert sidebar.locator(".pj-chat-usage").inner_text() == "Σ 1,230 tokens · $—"
    [request] = second_provider.chat_requests
    assert request.body is not None and request.body["model"] == "picked-large"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert "Answer in one sentence." in request.messages[0]["content"]  # the rules reached the model
    assert picker.evaluate("el => el.selectedOptions[0].textContent") == "picked-large"
    page.screenshot(path=str(artifacts_dir / "model-picker-reply.png"))
    sidebar.get_by_role("combobox", name="Model").screenshot(path=str(artifacts_dir / "model-picker.png"))

    # The runs metrics sum the task's tokens; no price is known, so its cost stays unknown.
    sidebar.locator(".pj-tab-runs").click()
    sidebar.locator(".pj-subtab-metrics").click()
    row = sidebar.locator(".pj-metrics-table tr", has=page.locator("td:text-is('process-message')"))
    row.wait_for(timeout=10_000)
    headers = sidebar.locator(".pj-metrics-table th").all_inner_texts()
    cells = dict(zip(headers, row.locator("td").all_inner_texts()))
    assert cells["Tokens"] == "1,230" and cells["Cost (est.)"] == "—", cells
    page.screenshot(path=str(artifacts_dir / "metrics-tokens-cost.png"))

    assert KEY not in page.content(), "the key is in the page"
    assert KEY not in lab_server.log_path.read_text(errors="replace"), "the key is in the server log"
    assert not page.polaris_log.unexpected(ALLOWED_ERRORS)
