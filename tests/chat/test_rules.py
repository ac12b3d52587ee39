"""Workspace rules (AGENTS.md, .polaris/rules/*.md): what the system prompt gets (read per turn,
capped with a note), and the listing the UI shows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from polaris_jupyter.chat.rules import MAX_RULE_FILES, read_rules
from polaris_jupyter.testing import Response
from tests.chat.conftest import ChatEnv


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_agents_md_first_then_the_rules_folder_by_name(tmp_path: Path) -> None:
    write(tmp_path, ".polaris/rules/b-style.md", "Use tabs.")
    write(tmp_path, ".polaris/rules/a-tests.md", "Write a test for every fix.")
    write(tmp_path, ".polaris/rules/notes.txt", "not a rules file")
    write(tmp_path, ".polaris/rules/empty.md", "  \n")
    write(tmp_path, "AGENTS.md", "# Project rules\nRun ruff before you finish.")
    rules = read_rules(tmp_path, 10_000)
    assert [f.path for f in rules.files] == ["AGENTS.md", ".polaris/rules/a-tests.md", ".polaris/rules/b-style.md",
                                             ".polaris/rules/empty.md"]
    text = rules.text
    assert text.index("--- AGENTS.md ---") < text.index("--- .polaris/rules/a-tests.md ---") < text.index("Use tabs.")
    assert "not a rules file" not in text and "--- .polaris/rules/empty.md" not in text
    assert rules.files[-1].note == "empty"
    assert rules.to_json()["truncated"] is False
    assert read_rules(tmp_path / "nothing-here", 10_000).text == ""


def test_the_cap_cuts_with_a_note_the_model_and_the_listing_see(tmp_path: Path) -> None:
    write(tmp_path, "AGENTS.md", "A" * 300)
    write(tmp_path, ".polaris/rules/more.md", "B" * 300)
    rules = read_rules(tmp_path, 400)
    agents, more = rules.files
    assert (agents.chars, agents.included_chars, agents.truncated) == (300, 300, False)
    assert (more.chars, more.included_chars, more.truncated) == (300, 100, True)
    assert "B" * 100 in rules.text and "B" * 101 not in rules.text
    assert "[.polaris/rules/more.md was cut at 100 of 300 characters" in rules.text
    listing = rules.to_json()
    assert listing["includedChars"] == 400 and listing["truncated"] is True and listing["maxChars"] == 400
    assert listing["files"][1]["note"].startswith("cut at 100 of 300")

    write(tmp_path, ".polaris/rules/zlast.md", "C" * 50)  # nothing left for it: left out, and said so
    left_out = read_rules(tmp_path, 400)
    assert left_out.files[-1].included_chars == 0 and "C" not in left_out.text
    assert "[.polaris/rules/zlast.md was left out" in left_out.text


def test_rules_outside_the_workspace_and_too_many_files_are_skipped(tmp_path: Path) -> None:
    root, outside = tmp_path / "ws", tmp_path / "secret.md"
    outside.write_text("TOP SECRET")
    write(root, ".polaris/rules/keep.md", "keep me")
    os.symlink(outside, root / "AGENTS.md")
    rules = read_rules(root, 10_000)
    assert "TOP SECRET" not in rules.text and "keep me" in rules.text
    assert rules.files[0].note == "skipped: it leads outside the workspace"
    for i in range(MAX_RULE_FILES + 2):
        write(root, f".polaris/rules/r{i:03}.md", f"rule {i}")
    crowded = read_rules(root, 100_000)
    assert "[3 more files in .polaris/rules were left out" in crowded.text


@pytest.mark.asyncio
async def test_the_model_is_told_the_rules_and_an_edit_applies_to_the_next_message(chat_env: ChatEnv) -> None:
    root = chat_env.runtime.root_dir
    write(root, "AGENTS.md", "Always answer in French.")
    chat_env.runtime.config.rules_max_chars = 60
    write(root, ".polaris/rules/long.md", "X" * 500)
    chat_env.model.enqueue(Response(text="Bonjour"), Response(text="Hola"))
    conv = await chat_env.chat.create_conversation()
    _, run_id = await chat_env.chat.post_message(conv.id, "hello")
    await chat_env.settle(run_id)
    system = chat_env.model.chat_requests[-1].messages[0]
    assert system["role"] == "system" and "Always answer in French." in system["content"]
    assert "X" * 36 in system["content"] and "X" * 37 not in system["content"]  # 60 minus AGENTS.md's 24
    assert "[.polaris/rules/long.md was cut at 36 of 500 characters" in system["content"]

    write(root, "AGENTS.md", "Always answer in Spanish.")
    _, run_id = await chat_env.chat.post_message(conv.id, "hello again")
    await chat_env.settle(run_id)
    system = chat_env.model.chat_requests[-1].messages[0]["content"]
    assert "Always answer in Spanish." in system and "French" not in system

    listing = (await chat_env.runtime.api.dispatch("get_rules")).body
    assert [f["path"] for f in listing["files"]] == ["AGENTS.md", ".polaris/rules/long.md"]
    assert listing["files"][1]["truncated"] is True
