"""The notebook panel's model line (labextension/src/renderer/modelBar.ts over the comm): the
models listed, the conversation's choice set and used by the next answer, the rules listed."""

from __future__ import annotations

from pathlib import Path

from polaris_jupyter.kernel import Polaris
from polaris_jupyter.kernel.widgets import ChatPanel
from polaris_jupyter.testing import Response, ScriptedModelServer
from tests.kernel.test_widgets import Browser, browser, final_status  # noqa: F401  (fixture)


def test_the_panel_lists_models_and_sets_the_chats_choice(
    local_client: Polaris, model: ScriptedModelServer, browser: Browser, workspace: Path  # noqa: F811
) -> None:
    model.extra_models = ["scripted-2"]
    (workspace / "AGENTS.md").write_text("Be brief.")
    panel = ChatPanel(local_client)
    try:
        listed = browser.request(panel, "models")
        assert listed["ok"] is True, listed
        [local] = [p for p in listed["data"]["providers"] if p["name"] == "local"]
        assert [m["id"] for m in local["models"]] == ["scripted-1", "scripted-2"]

        chosen = browser.request(panel, "set_model", provider="local", model="scripted-2")
        assert chosen["ok"] is True and (chosen["data"]["provider"], chosen["data"]["model"]) == ("local", "scripted-2")
        refused = browser.request(panel, "set_model", provider="cerebras", model="x")
        assert refused["ok"] is False and "cerebras" in refused["error"] and refused["status"] == 400

        rules = browser.request(panel, "rules")
        assert [f["path"] for f in rules["data"]["files"]] == ["AGENTS.md"]

        model.enqueue(Response(text="from scripted-2"))
        sent = browser.request(panel, "send", text="hello")
        assert sent["ok"] is True, sent
        message_id = sent["data"]["messageId"]
        browser.wait_for(lambda: final_status(browser, message_id) == "completed")
        assert model.chat_requests[-1].body["model"] == "scripted-2"  # type: ignore[index]
        assert "Be brief." in model.chat_requests[-1].messages[0]["content"]
    finally:
        panel.close()
