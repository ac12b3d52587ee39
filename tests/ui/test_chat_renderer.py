"""The shared chat renderer, through the built notebook-widget bundle, in real Chromium.

The bundle (polaris_jupyter/kernel/static/chat-widget.js) is loaded as an anywidget ESM module
with a scripted stand-in for the anywidget model, so these tests pin the comm protocol the
kernel side implements: snapshot / events / response in, request out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import WIDGET_STATIC

pytestmark = [pytest.mark.browser]

ORIGIN = "http://polaris.test"

HOST_PAGE = """<!doctype html>
<html><head><meta charset="utf-8">
<link rel="stylesheet" href="/chat-widget.css">
<style>body { margin: 16px; font-family: sans-serif; } #root { width: 620px; }</style>
</head><body><div id="root"></div>
<script type="module">
class FakeModel {
  constructor(state) { this.state = state; this.handlers = {}; this.sent = []; this.autoRespond = true; }
  get(key) { return this.state[key]; }
  set(key, value) { this.state[key] = value; this.emit('change:' + key); }
  on(event, cb) { (this.handlers[event] ??= []).push(cb); }
  off(event, cb) { this.handlers[event] = (this.handlers[event] || []).filter(h => h !== cb); }
  emit(event, ...args) { (this.handlers[event] || []).slice().forEach(h => h(...args)); }
  custom(message) { this.emit('msg:custom', message, []); }
  send(message) {
    this.sent.push(message);
    if (message.kind !== 'request' || !this.autoRespond) return;
    setTimeout(() => {
      if (message.action === 'refresh' && window.snapshot) this.custom(window.snapshot);
      this.custom({ kind: 'response', id: message.id, ok: true, data: {} });
    }, 0);
  }
}
const entry = new URL(location.href).searchParams.get('widget') || 'chat-widget.js';
const widget = (await import('/' + entry)).default;
window.model = new FakeModel({
  conversation_id: 'c1',
  conversations: [{ id: 'c1', title: 'Refactor the parser' }, { id: 'c2', title: 'Older chat' }],
  status_text: 'connected', busy: false
});
window.cleanup = widget.render({ model: window.model, el: document.getElementById('root') });
window.ready = true;
</script></body></html>"""


def _serve(route: Any) -> None:
    path = route.request.url[len(ORIGIN):].split("?")[0]
    if path in ("/", "/index.html"):
        route.fulfill(status=200, content_type="text/html", body=HOST_PAGE)
        return
    file = WIDGET_STATIC / path.lstrip("/")
    if file.parent == WIDGET_STATIC and file.is_file():
        content_type = "text/javascript" if file.suffix == ".js" else "text/css"
        route.fulfill(status=200, content_type=content_type, body=file.read_bytes())
        return
    route.fulfill(status=404, body="not found")


def ts() -> str:
    return "2025-01-01T00:00:00Z"


def message(mid: str, role: str, content: str, status: str = "completed", run_id: str | None = "run_1", **extra: Any) -> dict[str, Any]:
    return {"id": mid, "conversationId": "c1", "role": role, "content": content, "status": status,
            "runId": run_id, "toolCalls": [], "createdAt": ts(), "updatedAt": ts(), **extra}


def event(seq: int, etype: str, data: dict[str, Any], run_id: str = "run_1") -> dict[str, Any]:
    return {"seq": seq, "runId": run_id, "runSeq": seq, "conversationId": "c1", "type": etype, "data": data, "ts": ts()}


def snapshot(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "snapshot", "conversation": {"id": "c1", "title": "Refactor the parser"},
            "messages": list(messages), "status": {"provider": "local", "model": "scripted-model"}}


@pytest.fixture
def widget_page(page: Any, browser_requirements: None) -> Any:
    if not (WIDGET_STATIC / "chat-widget.js").exists():
        pytest.skip("widget bundle not built: cd labextension && npm run build:widget")
    page.route(f"{ORIGIN}/**", _serve)
    return page


def load(page: Any, snap: dict[str, Any], widget: str = "chat-widget.js") -> None:
    page.add_init_script(f"window.snapshot = {json.dumps(snap)};")
    page.goto(f"{ORIGIN}/index.html?widget={widget}")
    page.wait_for_function("() => window.ready === true")


def push(page: Any, payload: dict[str, Any]) -> None:
    page.evaluate("(m) => window.model.custom(m)", payload)


def sent_requests(page: Any, action: str) -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = page.evaluate("() => window.model.sent")
    return [r for r in requests if r.get("kind") == "request" and r.get("action") == action]


def body_text(page: Any, mid: str) -> str:
    return str(page.locator(f'[data-message-id="{mid}"] .pj-msg-body').inner_text())


def test_snapshot_and_deltas_ignore_duplicates_and_resync_on_gap(widget_page: Any) -> None:
    page = widget_page
    load(page, snapshot(message("u1", "user", "Hi"), message("a1", "assistant", "Hel", "processing")))
    page.wait_for_selector('[data-message-id="a1"]')
    assert len(sent_requests(page, "refresh")) == 1  # on render

    push(page, {"kind": "events", "events": [
        event(1, "message.delta", {"messageId": "a1", "delta": "lo", "offset": 3}),
        event(2, "message.delta", {"messageId": "a1", "delta": "Hello", "offset": 0}),  # duplicate
        event(3, "message.delta", {"messageId": "a1", "delta": "o world", "offset": 4}),  # overlaps
    ]})
    page.wait_for_function("() => document.querySelector('[data-message-id=a1] .pj-msg-body').innerText === 'Hello world'")
    assert body_text(page, "a1") == "Hello world"
    assert len(sent_requests(page, "refresh")) == 1

    # A delta past the end means one was missed: the view asks the kernel for a snapshot.
    push(page, {"kind": "events", "events": [event(4, "message.delta", {"messageId": "a1", "delta": "!", "offset": 40})]})
    page.wait_for_function("() => window.model.sent.filter(m => m.action === 'refresh').length === 2")
    assert body_text(page, "a1") == "Hello world"


def test_markdown_is_rendered_and_html_is_escaped(widget_page: Any, artifacts_dir: Path) -> None:
    page = widget_page
    hostile = (
        "# Plan\n\nUse **bold**, _em_ and `code`.\n\n"
        "<img src=x onerror=\"window.pwned = 1\"> <script>window.pwned = 2</script>\n\n"
        "[click](javascript:window.pwned=3) and [docs](https://example.org/a?b=1&c=2)\n\n"
        "```python\nprint('<b>hi</b>')\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    )
    load(page, snapshot(message("u1", "user", "Explain"), message("a1", "assistant", hostile)))
    body = page.locator('[data-message-id="a1"] .pj-msg-body')
    body.wait_for()
    assert page.evaluate("() => window.pwned") is None
    assert body.locator("img, script, iframe").count() == 0
    assert body.locator("h1").inner_text() == "Plan"
    assert body.locator("strong").inner_text() == "bold"
    assert body.locator("table td").count() == 2
    assert "<img src=x" in body.inner_text()
    hrefs = body.locator("a").evaluate_all("els => els.map(a => a.getAttribute('href'))")
    assert hrefs == ["https://example.org/a?b=1&c=2"]
    assert body.locator("pre code").inner_text() == "print('<b>hi</b>')"


DIFF = """--- a/src/parser.py
+++ b/src/parser.py
@@ -1,4 +1,5 @@
 import re
-def parse(text):
-    return text.split()
+def parse(text: str) -> list[str]:
+    \"\"\"Split on whitespace.\"\"\"
+    return re.split(r"\\s+", text.strip())
"""


def test_tool_cards_show_status_duration_diff_and_revert(widget_page: Any, artifacts_dir: Path) -> None:
    page = widget_page
    load(page, snapshot(message("u1", "user", "Add type hints to the parser"),
                        message("a1", "assistant", "", "processing")))
    page.wait_for_selector('[data-message-id="a1"]')
    call = {"id": "t1", "name": "writeFile", "arguments": {"path": "src/parser.py", "content": "..."}, "status": "running"}
    push(page, {"kind": "events", "events": [event(1, "toolcall.started", {"messageId": "a1", "toolCall": call})]})
    card = page.locator('[data-tool-id="t1"]')
    card.wait_for()
    assert "running" in card.locator(".pj-badge").inner_text()

    finished = {**call, "status": "succeeded", "durationMs": 1250, "summary": "wrote src/parser.py (3 lines changed)", "diff": DIFF}
    push(page, {"kind": "events", "events": [
        event(2, "toolcall.finished", {"messageId": "a1", "toolCall": finished}),
        event(3, "toolcall.started", {"messageId": "a1", "toolCall": {**call, "status": "running"}}),  # late, ignored
        event(4, "message.delta", {"messageId": "a1", "delta": "Done: `parse` now has type hints.", "offset": 0}),
        event(5, "message.status", {"messageId": "a1", "status": "completed", "provider": "local", "model": "scripted-model"}),
    ]})
    page.wait_for_function("() => document.querySelector('[data-tool-id=t1] .pj-badge').innerText === 'done'")
    assert card.locator(".pj-tool-duration").inner_text() == "1.3 s"
    assert "wrote src/parser.py" in card.locator(".pj-tool-summary").inner_text()
    assert card.locator(".pj-diff-add").count() == 3
    assert card.locator(".pj-diff-del").count() == 2
    assert card.locator(".pj-diff-hunk").count() == 1
    page.screenshot(path=str(artifacts_dir / "widget-chat.png"), full_page=True)

    # The file changed after the run: the kernel answers 409, the card says why and offers to
    # revert anyway; that second request carries force.
    page.evaluate("() => { window.model.autoRespond = false; }")
    card.locator("button.pj-revert").click()
    page.wait_for_function("() => window.model.sent.some(m => m.action === 'revert')")
    first = sent_requests(page, "revert")[0]
    assert first["args"] == {"runId": "run_1", "force": False}
    why = "src/parser.py changed after this run (by you or by a later run); reverting would discard those changes"
    push(page, {"kind": "response", "id": first["id"], "ok": False, "error": why, "status": 409})
    page.wait_for_function("() => document.querySelector('[data-tool-id=t1] button.pj-revert').innerText === 'Revert anyway'")
    assert "src/parser.py changed after this run" in card.locator(".pj-tool-error").inner_text()
    assert "Revert failed" not in card.inner_text()
    page.evaluate("() => { window.model.autoRespond = true; }")
    card.locator("button.pj-revert-force").click()
    page.wait_for_function("() => document.querySelector('[data-tool-id=t1] button.pj-revert').innerText === 'Reverted'")
    assert sent_requests(page, "revert")[1]["args"] == {"runId": "run_1", "force": True}
    assert card.locator(".pj-tool-error").count() == 0


def test_reverts_made_elsewhere_show_on_the_cards(widget_page: Any) -> None:
    """A revert made before the view loaded (revertedAt) or from another client (a
    run.reverted event) shows as Reverted, without this view sending anything."""
    page = widget_page
    write = {"id": "t1", "name": "writeFile", "arguments": {"path": "a.py"}, "status": "succeeded", "diff": DIFF}
    edit = {**write, "id": "t2", "arguments": {"path": "b.py"}}
    load(page, snapshot(
        message("u1", "user", "Write a.py", run_id=None),
        message("a1", "assistant", "Wrote a.py.", run_id="run_1", toolCalls=[write], revertedAt="2026-11-29T15:00:00.000Z"),
        message("u2", "user", "Write b.py", run_id=None),
        message("a2", "assistant", "Wrote b.py.", run_id="run_2", toolCalls=[edit]),
    ))
    page.wait_for_selector('[data-tool-id="t2"] button.pj-revert')
    assert page.locator('[data-tool-id="t1"] button.pj-revert').inner_text() == "Reverted"
    assert page.locator('[data-tool-id="t1"] button.pj-revert').is_disabled()
    assert page.locator('[data-tool-id="t2"] button.pj-revert').inner_text() == "Revert this run"
    push(page, {"kind": "events", "events": [event(1, "run.reverted", {"runId": "run_2", "paths": ["b.py"]}, run_id="")]})
    page.wait_for_function("() => document.querySelector('[data-tool-id=t2] button.pj-revert').innerText === 'Reverted'")
    assert sent_requests(page, "revert") == []


def test_stop_while_processing_and_retry_after_failure(widget_page: Any, artifacts_dir: Path) -> None:
    page = widget_page
    load(page, snapshot(message("u1", "user", "Write a long essay"), message("a1", "assistant", "Once upon", "processing")))
    stop = page.locator("button.pj-stop")
    stop.wait_for(state="visible")
    assert page.locator("button.pj-send").is_disabled()
    stop.click()
    page.wait_for_function("() => window.model.sent.some(m => m.action === 'stop')")
    assert sent_requests(page, "stop")[0]["args"] == {"messageId": "a1"}

    push(page, {"kind": "events", "events": [
        event(1, "message.status", {"messageId": "a1", "status": "failed",
                                    "error": {"message": "model returned 503", "detail": "APIStatusError: 503", "attempt": 3}}),
    ]})
    retry = page.locator('[data-message-id="a1"] button.pj-retry')
    retry.wait_for(state="visible")
    assert "model returned 503" in page.locator('[data-message-id="a1"] .pj-msg-error').inner_text()
    assert stop.is_hidden()
    page.screenshot(path=str(artifacts_dir / "widget-chat-failed.png"), full_page=True)
    retry.click()
    page.wait_for_function("() => window.model.sent.some(m => m.action === 'retry')")
    assert sent_requests(page, "retry")[0]["args"] == {"messageId": "a1"}

    # The retry (as the server sends it: a reset, then the message with its new run) replaces
    # the content instead of appending to it; late events of the old run are ignored.
    retried = message("a1", "assistant", "", "pending", run_id="run_2")
    push(page, {"kind": "events", "events": [
        {**event(2, "message.status", {"messageId": "a1", "status": "pending", "reset": True}), "runId": None},
        event(3, "message.created", {"message": retried}, run_id="run_2"),
        event(4, "message.status", {"messageId": "a1", "status": "processing", "attempt": 1}, run_id="run_2"),
        event(5, "message.delta", {"messageId": "a1", "delta": "Fresh start", "offset": 0}, run_id="run_2"),
        event(6, "message.delta", {"messageId": "a1", "delta": " (stale)", "offset": 9}, run_id="run_1"),
    ]})
    page.wait_for_function("() => document.querySelector('[data-message-id=a1] .pj-msg-body').innerText === 'Fresh start'")
    assert page.locator('[data-message-id="a1"] .pj-retry').count() == 0


def test_enter_sends_and_shift_enter_adds_a_line(widget_page: Any) -> None:
    page = widget_page
    load(page, snapshot(message("u1", "user", "Hi"), message("a1", "assistant", "Hello!")))
    box = page.locator("textarea.pj-chat-input")
    box.click()
    box.type("first line")
    box.press("Shift+Enter")
    box.type("second line")
    assert sent_requests(page, "send") == []
    box.press("Enter")
    page.wait_for_function("() => window.model.sent.some(m => m.action === 'send')")
    assert sent_requests(page, "send")[0]["args"]["text"] == "first line\nsecond line"
    assert box.input_value() == ""

    # A failed request keeps the text and says why.
    page.evaluate("() => { window.model.autoRespond = false; }")
    box.type("again")
    box.press("Enter")
    request_id = page.evaluate("() => window.model.sent.filter(m => m.action === 'send').at(-1).id")
    push(page, {"kind": "response", "id": request_id, "ok": False, "error": "another message is processing (409)"})
    page.wait_for_selector(".pj-banner:not([hidden])")
    assert "409" in page.locator(".pj-banner").inner_text()
    assert box.input_value() == "again"


def test_conversation_picker_and_new_conversation_send_requests(widget_page: Any) -> None:
    page = widget_page
    load(page, snapshot(message("u1", "user", "Hi")))
    picker = page.locator("select.pj-conversation-picker")
    assert picker.locator("option").all_inner_texts() == ["Refactor the parser", "Older chat"]
    picker.select_option("c2")
    page.wait_for_function("() => window.model.sent.some(m => m.action === 'select_conversation')")
    assert sent_requests(page, "select_conversation")[0]["args"] == {"conversationId": "c2"}
    page.locator("button.pj-new-conversation").click()
    page.wait_for_function("() => window.model.sent.some(m => m.action === 'new_conversation')")
    # busy (a synced traitlet) disables Send.
    page.evaluate("() => window.model.set('busy', true)")
    assert page.locator("button.pj-send").is_disabled()


def test_progress_widget_shows_steps_bar_and_files(widget_page: Any, artifacts_dir: Path) -> None:
    page = widget_page
    snap = {"kind": "snapshot", "steps": [{"id": "config", "state": "finished", "durationMs": 900},
                                          {"id": "components", "state": "started"},
                                          {"id": "readme", "state": "pending"}],
            "files": [{"path": "package.json", "preview": "{\n  \"name\": \"app\"\n}"}],
            "done": 1, "total": 3, "status": "EXECUTING"}
    load(page, snap, widget="progress-widget.js")
    page.wait_for_selector(".pj-step-finished")
    push(page, {"kind": "events", "events": [
        event(1, "generation.step", {"stepId": "components", "state": "finished", "durationMs": 2400}),
        event(2, "generation.file", {"path": "src/App.tsx", "preview": "export function App() {}"}),
        event(3, "generation.progress", {"done": 2, "total": 3}),
        event(4, "generation.step", {"stepId": "readme", "state": "failed"}),
        event(5, "generation.error", {"message": "readme: model returned no file"}),
    ]})
    page.wait_for_function("() => document.querySelectorAll('.pj-step-finished').length === 2")
    assert page.locator(".pj-step-failed .pj-step-name").inner_text() == "readme"
    assert page.locator(".pj-progress-count").inner_text() == "2 / 3 steps"
    width = page.evaluate("() => document.querySelector('.pj-progress-fill').style.width")
    assert width == "67%"
    assert page.locator(".pj-progress-files code").all_inner_texts() == ["package.json", "src/App.tsx"]
    assert "model returned no file" in page.locator(".pj-log-error").inner_text()
    page.screenshot(path=str(artifacts_dir / "widget-progress.png"), full_page=True)
