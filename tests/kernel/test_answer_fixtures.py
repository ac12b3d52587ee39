"""The Python answer reducer (``AnswerState``) against the shared event-sequence fixtures in
``tests/fixtures/events/`` — the same files ``labextension/test/events.test.mjs`` runs through
the TypeScript reducer, so the sidebar, the notebook panel, ``%polaris ask`` and the terminal
agree on what a stream of chat events means. Plus the cell output's mime bundle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from polaris_jupyter.chat.store import MessageStatus
from polaris_jupyter.kernel._answer import ANSWER_MIME_TYPE, FINAL_MESSAGE_STATUSES, AnswerState, merge_delta
from polaris_jupyter.kernel._render import TerminalAnswer, answer_bundle, answer_text

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "events"
COMPARED = ("runId", "content", "status", "toolCalls", "error", "provider", "model", "usage")


def load_fixtures() -> list[Any]:
    return [pytest.param(json.loads(p.read_text()), id=p.stem) for p in sorted(FIXTURES.glob("*.json"))]


def reduce(fixture: dict[str, Any]) -> AnswerState:
    state = AnswerState.from_json(fixture["initial"])
    for event in fixture["events"]:
        state.apply(event)
    return state


def test_there_are_fixtures_for_every_rule() -> None:
    names = {p.stem for p in FIXTURES.glob("*.json")}
    assert {"stream_basic", "delta_unicode_offsets", "delta_gap", "retry_resets", "tool_calls", "failure"} <= names


@pytest.mark.parametrize("fixture", load_fixtures())
def test_reducer_matches_the_shared_fixture(fixture: dict[str, Any]) -> None:
    state = reduce(fixture)
    message = state.to_json()
    expected = fixture["expected"]
    assert {k: message[k] for k in COMPARED} == expected["message"], fixture["description"]
    assert state.gap is expected["gap"]
    assert answer_text(state) == expected["text"]


@pytest.mark.parametrize("fixture", load_fixtures())
def test_events_one_by_one_or_replayed_give_the_same_answer(fixture: dict[str, Any]) -> None:
    """Applying the whole sequence twice (a reconnect that resumes too early) changes nothing
    once the answer is final; a gap-free prefix replayed is harmless."""
    state = reduce(fixture)
    if not state.final or fixture["expected"]["gap"]:
        return
    before = state.to_json()
    for event in fixture["events"]:
        state.apply(event)
    assert state.to_json()["content"] == before["content"] and state.to_json()["status"] == before["status"]


def test_a_gap_is_repaired_by_loading_the_stored_message() -> None:
    fixture = json.loads((FIXTURES / "delta_gap.json").read_text())
    state = reduce(fixture)
    assert state.gap
    state.load({**fixture["initial"], "content": "First part. Then the later part", "status": "processing"})
    assert not state.gap and state.content == "First part. Then the later part"
    assert state.apply({"runId": "run_1", "type": "message.delta", "data": {"messageId": "m1", "offset": 31, "delta": "."}})
    assert state.content.endswith("later part.")


def test_merge_delta_counts_code_points() -> None:
    assert merge_delta("Hi 😀", 4, 4, " there") == ("Hi 😀 there", "applied")
    assert merge_delta("Hi 😀", 4, 3, "😀!") == ("Hi 😀!", "applied")
    assert merge_delta("Hi 😀", 4, 0, "Hi 😀") == ("Hi 😀", "duplicate")
    assert merge_delta("Hi", 2, 3, "x") == ("Hi", "gap")
    for bad in (-1, None, "1", True, 1.5):
        assert merge_delta("Hi", 2, bad, "x") == ("Hi", "gap")


def test_final_message_statuses_come_from_the_chat_model() -> None:
    assert FINAL_MESSAGE_STATUSES == {s.value for s in MessageStatus if s.is_final} == {"completed", "failed", "cancelled"}


def test_bundle_carries_the_state_for_the_lab_renderer_and_two_fallbacks() -> None:
    fixture = json.loads((FIXTURES / "tool_calls.json").read_text())
    state = reduce(fixture)
    bundle = answer_bundle(state)
    assert set(bundle) == {ANSWER_MIME_TYPE, "text/plain", "text/html"}
    payload = bundle[ANSWER_MIME_TYPE]
    assert payload["version"] == 1
    assert payload["message"] == state.to_json()
    assert payload["message"]["role"] == "assistant" and payload["message"]["id"] == "m1"
    assert [c["id"] for c in payload["message"]["toolCalls"]] == ["t1", "t2"]
    json.dumps(payload)  # a JSON mime type must be plain JSON
    assert bundle["text/plain"] == fixture["expected"]["text"]
    html = bundle["text/html"]
    assert "pj-cell-answer-completed" in html and "readFile" in html and "permission denied" in html
    assert "<code>app.py</code>" in html


def test_html_fallback_escapes_model_html() -> None:
    state = AnswerState("m1", "run_1", content="Say **hi**. <script>alert(1)</script>", status="completed")
    html = answer_bundle(state)["text/html"]
    assert "<script>" not in html and "&lt;script&gt;" in html and "<strong>hi</strong>" in html


def test_failed_answer_says_so_in_every_fallback() -> None:
    fixture = json.loads((FIXTURES / "failure.json").read_text())
    bundle = answer_bundle(reduce(fixture))
    for text in (bundle["text/plain"], bundle["text/html"]):
        assert "Polaris could not finish this answer." in text and "All model providers failed" in text
        assert "%polaris retry" in text


def test_terminal_prints_the_reduced_answer_once(capsys: pytest.CaptureFixture[str]) -> None:
    """The terminal draws the same reduced states: the text once, a line per finished tool."""
    fixture = json.loads((FIXTURES / "retry_resets.json").read_text())
    terminal = TerminalAnswer()
    state = AnswerState.from_json(fixture["initial"])
    terminal.show(state)
    for event in fixture["events"]:
        if state.apply(event):
            terminal.update(None, state.copy())
    out = capsys.readouterr().out
    assert out.startswith("Polaris:\n")
    assert out.count("A fresh answer.") == 1
    assert "from the old run" not in out
    assert out.rstrip().endswith("A fresh answer.")
