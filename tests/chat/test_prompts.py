"""The request of a chat turn is a pure function of the history, the answer, the budget and the
system prompt: these tests pin its rules without a store, a clock or a model."""

from __future__ import annotations

import copy
from pathlib import Path

from polaris_jupyter.chat.prompts import (
    MESSAGE_OVERHEAD_TOKENS,
    approx_tokens,
    build_system_prompt,
    build_turn_prompt,
    history_turns,
    trim_history,
    turn_context,
)
from polaris_jupyter.chat.store import Message, MessageStatus

T0 = 1_700_000_000.0
ROOT = Path("/home/ada/project")


def msg(
    n: int,
    role: str,
    content: str,
    *,
    status: MessageStatus = MessageStatus.COMPLETED,
    context: dict[str, str] | None = None,
) -> Message:
    """Message number ``n`` of a conversation, created ``n`` seconds after T0."""
    return Message(f"msg_{n}", "conv_1", role, content, status, T0 + n, T0 + n, context=context)


def conversation() -> list[Message]:
    return [
        msg(1, "user", "What is in app.py?", context={"currentFile": "app.py"}),
        msg(2, "assistant", "A Flask app."),
        msg(3, "user", "Add a /health route."),
        msg(4, "assistant", "", status=MessageStatus.PENDING),  # the answer being written
    ]


def test_system_prompt_first_then_the_conversation_before_the_answer() -> None:
    history = conversation()
    prompt = build_turn_prompt(history, history[3], root=ROOT, budget_tokens=10_000)
    messages = prompt.messages(["readFile"])
    assert messages == [
        {"role": "system", "content": build_system_prompt(ROOT, ["readFile"], {"currentFile": "app.py"})},
        {"role": "user", "content": "What is in app.py?"},
        {"role": "assistant", "content": "A Flask app."},
        {"role": "user", "content": "Add a /health route."},
    ]


def test_a_replayed_earlier_answer_does_not_see_what_came_after_it() -> None:
    history = conversation()
    history[3] = msg(4, "assistant", "Done: added /health.")
    history.append(msg(5, "user", "Now delete everything.", context={"currentFile": "danger.py"}))
    history.append(msg(6, "assistant", "Deleted."))
    answer = history[1]  # answering message 2 again (Retry / replay)
    prompt = build_turn_prompt(history, answer, root=ROOT, budget_tokens=10_000)
    assert prompt.history == [{"role": "user", "content": "What is in app.py?"}]
    assert prompt.context == turn_context(history, answer) == {"currentFile": "app.py"}


def test_tool_messages_empty_placeholders_and_the_answer_itself_are_left_out() -> None:
    history = conversation()
    history.insert(2, msg(2, "tool", "file listing"))
    answer = msg(9, "assistant", "partial text of the attempt before", status=MessageStatus.PROCESSING)
    history.append(answer)
    roles = [m["role"] for m in history_turns(history, answer, 10_000)]
    assert roles == ["user", "assistant", "user"]
    assert all(
        m["content"] != "partial text of the attempt before" for m in history_turns(history, answer, 10_000)
    )


def test_history_is_trimmed_to_the_budget_from_the_oldest() -> None:
    history = [msg(i, "user" if i % 2 else "assistant", f"message {i} " + "x" * 400) for i in range(1, 11)]
    answer = msg(11, "assistant", "", status=MessageStatus.PENDING)
    cost = approx_tokens(history[0].content) + MESSAGE_OVERHEAD_TOKENS
    turns = history_turns([*history, answer], answer, budget_tokens=cost * 3)
    # Three fit; the oldest of them would be an assistant reply without its question, so it goes too.
    assert [t["content"][:11] for t in turns] == ["message 9 x", "message 10 "]
    assert turns[0]["role"] == "user"


def test_the_newest_message_stays_however_long() -> None:
    long_question = "y" * 100_000
    history = [msg(1, "user", "hi"), msg(2, "assistant", "hello"), msg(3, "user", long_question)]
    answer = msg(4, "assistant", "", status=MessageStatus.PENDING)
    assert history_turns([*history, answer], answer, budget_tokens=10) == [
        {"role": "user", "content": long_question}
    ]


def test_trim_history_never_starts_with_an_orphaned_reply() -> None:
    turns = [
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": "c"},
    ]
    assert trim_history(turns, 1_000) == turns[1:]
    assert trim_history([{"role": "assistant", "content": "only"}], 1_000) == [
        {"role": "assistant", "content": "only"}
    ]


def test_context_is_the_newest_user_context_before_the_answer() -> None:
    history = conversation()
    history[2] = msg(3, "user", "Add a /health route.", context={"currentFile": "routes.py"})
    assert turn_context(history, history[3]) == {"currentFile": "routes.py"}
    assert turn_context([msg(1, "user", "no context"), history[3]], history[3]) is None


def test_system_prompt_names_workspace_tools_and_open_file() -> None:
    prompt = build_system_prompt(
        Path("/home/ada/project"), ["writeFile", "readFile"], {"currentFile": "src/app.py"}
    )
    assert "'project'" in prompt
    assert "Available tools: readFile, writeFile." in prompt
    assert "'src/app.py' open" in prompt
    assert "Available tools: none." in build_system_prompt(Path("/p"), [], None)
    assert "open" not in build_system_prompt(Path("/p"), [], {"currentFile": ""}).split("\n")[-1]


def test_pure_same_inputs_same_messages_inputs_unchanged() -> None:
    history = conversation()
    before = copy.deepcopy(history)
    first = build_turn_prompt(history, history[3], root=ROOT, budget_tokens=50)
    second = build_turn_prompt(history, history[3], root=ROOT, budget_tokens=50)
    assert first == second and first.messages(["a"]) == second.messages(["a"])
    assert history == before


def test_the_system_prompt_lists_the_tools_a_request_carries() -> None:
    history = conversation()
    prompt = build_turn_prompt(history, history[3], root=ROOT, budget_tokens=10_000)
    assert "Available tools: readFile, writeFile." in prompt.system(["writeFile", "readFile"])
    assert "Available tools: none." in prompt.system([])  # a server that gets no tools is told so
    assert prompt.messages([])[1:] == prompt.history
