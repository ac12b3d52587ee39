"""The widgets' side of the comm protocol (labextension/src/widget): requests from the browser,
snapshots, batched delta events, traitlets that survive a re-render; against an in-process
engine and the scripted model."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from polaris_jupyter.kernel import Polaris
from polaris_jupyter.kernel.widgets import BATCH_WINDOW_S, ChatPanel, GenerationProgress
from polaris_jupyter.testing import Response, ScriptedModelServer

_ids = itertools.count(1)


class Browser:
    """Plays the JavaScript side: records what the kernel sends, sends requests."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, dict[str, Any]]] = []

    def record(self, content: dict[str, Any], buffers: Any = None) -> None:
        self.sent.append((time.monotonic(), content))

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [c for _, c in self.sent if c.get("kind") == kind]

    def request(self, widget: Any, action: str, timeout_s: float = 20, **args: Any) -> dict[str, Any]:
        request_id = f"js-{next(_ids)}"
        widget._on_custom(widget, {"kind": "request", "id": request_id, "action": action, "args": args}, [])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for _, content in self.sent:
                if content.get("kind") == "response" and content.get("id") == request_id:
                    return content
            time.sleep(0.01)
        raise AssertionError(f"no response to {action}")

    def wait_for(self, predicate: Any, timeout_s: float = 20) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.02)
        raise AssertionError("the widget did not get there")

    def events(self) -> list[dict[str, Any]]:
        return [e for c in self.kinds("events") for e in c["events"]]


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    fake = Browser()
    monkeypatch.setattr(ChatPanel, "send", fake.record)
    monkeypatch.setattr(GenerationProgress, "send", fake.record)
    yield fake


def final_status(browser: Browser, message_id: str) -> str | None:
    statuses = [e["data"]["status"] for e in browser.events() if e["type"] == "message.status" and e["data"]["messageId"] == message_id]
    return statuses[-1] if statuses else None


def test_chat_panel_streams_deltas_in_batches(local_client: Polaris, model: ScriptedModelServer, browser: Browser) -> None:
    words = [f"token{i} " for i in range(120)]
    model.enqueue(Response.tool("listFiles", {"path": "."}), Response(tokens=words, delay_s=0.005))
    panel = ChatPanel(local_client)
    try:
        assert panel.conversation_id == local_client.current_conversation()
        assert [c["id"] for c in panel.conversations] == [panel.conversation_id]

        refreshed = browser.request(panel, "refresh")
        assert refreshed["ok"] is True
        snapshot = browser.kinds("snapshot")[-1]
        assert snapshot["conversation"]["id"] == panel.conversation_id and snapshot["messages"] == []
        assert snapshot["status"] == {"provider": "local", "model": "scripted-1"}

        sent = browser.request(panel, "send", text="list the files", context=None)
        assert sent["ok"] is True and set(sent["data"]) == {"messageId", "runId"}
        message_id = sent["data"]["messageId"]
        browser.wait_for(lambda: final_status(browser, message_id) == "completed")

        events = browser.events()
        assert {"message.created", "message.delta", "toolcall.started", "toolcall.finished"} <= {e["type"] for e in events}
        assert all(e.get("conversationId") == panel.conversation_id for e in events)
        deltas = [e["data"] for e in events if e["type"] == "message.delta" and e["data"]["messageId"] == message_id]
        text = ""
        for delta in deltas:  # deltas only: each starts where the previous ended, none repeats the text
            assert delta["offset"] == len(text)
            text += delta["delta"]
        assert text == "".join(words) and len(deltas) > 1
        stored = next(m for m in local_client.messages() if m["id"] == message_id)
        assert stored["content"] == text and stored["toolCalls"][0]["name"] == "listFiles"
        # A new view of the panel (re-render, or a browser joining while the kernel is busy)
        # gets the conversation from the synced snapshot traitlet, without asking the kernel.
        browser.request(panel, "refresh")
        synced = panel.snapshot
        assert synced["conversation"]["id"] == panel.conversation_id
        assert [m["id"] for m in synced["messages"]][-1] == message_id
        assert synced["messages"][-1]["content"] == text

        times = [t for t, c in browser.sent if c.get("kind") == "events"]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert gaps and min(gaps) >= BATCH_WINDOW_S * 0.9, "at most ~20 messages per second per panel"
        assert panel.busy is False
        # The first user message names the conversation; the picker follows.
        browser.wait_for(lambda: panel.conversations[0]["title"] == "list the files")
    finally:
        panel.close()


def test_chat_panel_actions(local_client: Polaris, model: ScriptedModelServer, browser: Browser, workspace: Path) -> None:
    model.enqueue(Response(text=" ".join(f"w{i}" for i in range(400)), delay_s=0.02))
    panel = ChatPanel(local_client)
    try:
        first = browser.request(panel, "send", text="talk")["data"]
        while not model.requests:
            time.sleep(0.01)
        busy = browser.request(panel, "send", text="again")
        assert busy["ok"] is False and "still being answered" in busy["error"]
        stopped = browser.request(panel, "stop", messageId=first["messageId"])
        assert stopped["ok"] is True and stopped["data"]["status"] == "cancelled"

        model.enqueue(Response.tool("writeFile", {"path": "new.txt", "content": "hi\n"}), Response(text="Wrote it."))
        retried = browser.request(panel, "retry", messageId=first["messageId"])
        assert retried["ok"] is True and retried["data"]["messageId"] == first["messageId"]
        browser.wait_for(lambda: (workspace / "new.txt").exists() and final_status(browser, first["messageId"]) == "completed")
        (workspace / "new.txt").write_text("hi\nand the user's line\n")
        conflict = browser.request(panel, "revert", runId=retried["data"]["runId"])
        assert conflict["ok"] is False and conflict["status"] == 409 and "new.txt changed after this run" in conflict["error"]
        reverted = browser.request(panel, "revert", runId=retried["data"]["runId"], force=True)
        assert reverted["ok"] is True and reverted["data"]["reverted"] == ["new.txt"]
        assert not (workspace / "new.txt").exists()
        # The panel hears of it as an event (as would any other open view of the conversation).
        browser.wait_for(lambda: any(e["type"] == "run.reverted" and e["data"]["runId"] == retried["data"]["runId"] for e in browser.events()))

        assert browser.request(panel, "stop", messageId="msg_nope")["ok"] is False
        assert "type a message" in browser.request(panel, "send", text="  ")["error"]
        assert "unknown widget action" in browser.request(panel, "explode")["error"]
        # Malformed requests from the page are ignored, not crashes.
        panel._on_custom(panel, "not a dict", [])
        panel._on_custom(panel, {"kind": "nonsense"}, [])
    finally:
        panel.close()


def test_chat_panel_switches_conversations(local_client: Polaris, browser: Browser) -> None:
    panel = ChatPanel(local_client)
    try:
        old = panel.conversation_id
        created = browser.request(panel, "new_conversation")
        assert created["ok"] is True
        new = created["data"]["id"]
        assert new != old and panel.conversation_id == new == local_client.conversation_id
        assert {c["id"] for c in panel.conversations} == {old, new}
        assert browser.kinds("snapshot")[-1]["conversation"]["id"] == new

        selected = browser.request(panel, "select_conversation", conversationId=old)
        assert selected["ok"] is True and panel.conversation_id == old
        assert browser.kinds("snapshot")[-1]["conversation"]["id"] == old
        missing = browser.request(panel, "select_conversation", conversationId="conv_nope")
        assert missing["ok"] is False and "no conversation" in missing["error"] and panel.conversation_id == old
    finally:
        panel.close()


def test_generation_progress(local_client: Polaris, model: ScriptedModelServer, browser: Browser, workspace: Path) -> None:
    script = pytest.importorskip("polaris_jupyter.tasks.generate_script")
    model.responder = script.ScriptedGeneration(tokens_per_file=60)
    run = local_client.generate("A todo app", kind="react-vite", path="todo")
    widget = GenerationProgress(local_client, run.id)
    try:
        browser.wait_for(lambda: browser.kinds("snapshot"))
        first = browser.kinds("snapshot")[0]
        assert first["runId"] == run.id and first["total"] >= 9
        assert {s["id"] for s in first["steps"]} >= {"config-files", "components", "verify"}
        assert browser.request(widget, "refresh")["ok"] is True
        assert local_client.wait(run.id, timeout_s=60)["status"] == "COMPLETED"
        browser.wait_for(lambda: widget.status == "COMPLETED")
        state = widget.state
        assert state.done == state.total == len(state.steps) and all(s["state"] in ("finished", "skipped") for s in state.steps)
        assert widget.done == widget.total == state.total
        paths = {f["path"] for f in state.files}
        assert "todo/package.json" in paths or "package.json" in {Path(p).name for p in paths}
        assert all((workspace / p).is_file() or (workspace / "todo" / p).is_file() for p in paths)
        # After the browser synced, the rest came as events (deltas), not whole snapshots.
        streamed = browser.events()
        assert {"generation.step", "generation.file"} <= {e["type"] for e in streamed}
        assert all(e["runId"] == run.id for e in streamed)
        # A view rendered later gets the whole state in one snapshot.
        assert browser.request(widget, "refresh")["ok"] is True
        last = browser.kinds("snapshot")[-1]
        assert last["status"] == "COMPLETED" and last["done"] == last["total"] and len(last["files"]) == len(paths)
        assert "COMPLETED" in repr(widget)
    finally:
        widget.close()
