"""What a chat message says about its state, through the built widget bundle (the renderer the
sidebar uses too) in real Chromium: the badge while it thinks and writes, the tokens it used
(unknown is "—", never 0), and a model failure's whole text in the bubble with the detail
folded under it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.ui.test_chat_renderer import event, load, message, push, snapshot, widget_page  # noqa: F401

pytestmark = [pytest.mark.browser]


def badge(page: Any, mid: str) -> str:
    badges = page.locator(f'[data-message-id="{mid}"] .pj-msg-meta .pj-badge')
    return str(badges.inner_text()) if badges.count() else ""


def test_badge_says_thinking_then_writing_then_nothing(widget_page: Any) -> None:  # noqa: F811
    page = widget_page
    load(page, snapshot(message("u1", "user", "Hi"), message("a1", "assistant", "", "processing")))
    page.wait_for_selector('[data-message-id="a1"] .pj-badge')
    assert badge(page, "a1") == "thinking…"

    push(page, {"kind": "events", "events": [event(1, "message.delta", {"messageId": "a1", "offset": 0, "delta": "Hello"})]})
    page.wait_for_function("() => document.querySelector('[data-message-id=\"a1\"] .pj-msg-body').innerText.includes('Hello')")
    assert badge(page, "a1") == "writing…", "text is streaming: the model is writing, not thinking"

    push(page, {"kind": "events", "events": [event(2, "message.status", {"messageId": "a1", "status": "completed", "final": True})]})
    page.wait_for_selector('[data-message-id="a1"].pj-msg-status-completed')
    assert badge(page, "a1") == ""


def test_token_usage_unknown_is_a_dash_never_zero(widget_page: Any) -> None:  # noqa: F811
    page = widget_page
    load(page, snapshot(
        message("u1", "user", "Hi"),
        message("a1", "assistant", "Counted.", provider="openai", model="gpt-4o-mini",
                usage={"promptTokens": 1200, "completionTokens": 34, "totalTokens": 1234}),
        message("u2", "user", "Again"),
        message("a2", "assistant", "Not counted.", provider="local", model="llama", usage=None),
        message("u3", "user", "And again"),
        message("a3", "assistant", "", "processing"),
    ))
    page.wait_for_selector('[data-message-id="a2"] .pj-msg-usage')
    counted = page.locator('[data-message-id="a1"] .pj-msg-usage')
    assert counted.inner_text() == "1,234 tokens"
    assert "1,200 in" in (counted.get_attribute("title") or "")
    unknown = page.locator('[data-message-id="a2"] .pj-msg-usage')
    assert unknown.inner_text() == "— tokens"
    assert "did not report" in (unknown.get_attribute("title") or "")
    assert page.locator('[data-message-id="a3"] .pj-msg-usage').count() == 0, "no count before the answer is done"

    # The final status event of a streamed answer carries usage: null when the server sent none.
    push(page, {"kind": "events", "events": [
        event(1, "message.delta", {"messageId": "a3", "offset": 0, "delta": "Done."}),
        event(2, "message.status", {"messageId": "a3", "status": "completed", "final": True, "usage": None,
                                    "provider": "local", "model": "llama"}),
    ]})
    page.wait_for_selector('[data-message-id="a3"] .pj-msg-usage')
    assert page.locator('[data-message-id="a3"] .pj-msg-usage').inner_text() == "— tokens"
    assert "0 tokens" not in page.locator(".pj-chat-messages").inner_text()


REJECTED = ("OPENAI_API_KEY was rejected by api.example/v1 (401 Unauthorized: \"Incorrect API key provided: sk-...abcd. "
            "You can find your API key at https://platform.example/account/api-keys.\"): set a valid key (env or settings)")


def test_model_failure_shows_its_whole_text_and_folds_the_detail(widget_page: Any, artifacts_dir: Path) -> None:  # noqa: F811
    page = widget_page
    load(page, snapshot(
        message("u1", "user", "Hi"),
        message("a1", "assistant", "", "failed", error={"message": REJECTED, "detail": f"ModelError: {REJECTED}"}),
        message("u2", "user", "Again"),
        message("a2", "assistant", "", "failed", error={
            "message": "Something went wrong while answering.",
            "detail": "RuntimeError: the tool registry is closed\n  File \"loop.py\", line 12, in run",
        }),
    ))
    page.wait_for_selector('[data-message-id="a2"] .pj-msg-error')
    first = page.locator('[data-message-id="a1"] .pj-msg-error')
    assert REJECTED in first.inner_text(), "the whole message is in the bubble, not only in a tooltip"
    assert first.locator(".pj-msg-error-text").is_visible()
    assert first.locator("details").count() == 0, "a detail that only repeats the text is not shown twice"

    second = page.locator('[data-message-id="a2"] .pj-msg-error')
    assert "Something went wrong while answering." in second.inner_text()
    more = second.locator("details.pj-msg-error-more")
    assert more.count() == 1 and not more.locator("pre").is_visible()
    more.locator("summary").click()
    assert more.locator("pre").is_visible()
    assert "RuntimeError: the tool registry is closed" in more.locator("pre").inner_text()
    assert second.locator("button.pj-retry").is_visible()
    page.screenshot(path=str(artifacts_dir / "chat-model-failure.png"), full_page=True)


def test_new_chat_is_called_the_same_everywhere(widget_page: Any) -> None:  # noqa: F811
    page = widget_page
    load(page, snapshot())
    button = page.locator("button.pj-new-conversation")
    assert button.inner_text() == "New chat"
    page.evaluate("() => window.model.set('conversation_id', '')")
    assert page.locator("select.pj-conversation-picker option").first.inner_text() == "New chat"
