"""Workspace rules: ``AGENTS.md`` and ``.polaris/rules/*.md``, added to the system prompt.

They are read again for every turn (an edit applies to the next message), in a thread, and
capped at ``PolarisConfig.rules_max_chars`` characters in all: a file that does not fit is cut,
and the prompt says so (so the model knows it has not seen everything), as does the listing the
UI shows (``GET /rules``), so the user knows what the model was told. Only regular files inside
the workspace count: a symlink that leads out of it is skipped.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MAX_RULE_FILES", "MAX_RULE_FILE_BYTES", "RULES_DIR", "RULES_FILE", "RuleFile", "Rules", "load_rules", "read_rules"]

log = logging.getLogger("polaris_jupyter.chat")

RULES_FILE = "AGENTS.md"
RULES_DIR = ".polaris/rules"
#: Files of ``.polaris/rules`` beyond this many (by name) are listed as skipped, not read.
MAX_RULE_FILES = 50
#: At most this much of one file is read (more could never fit the prompt).
MAX_RULE_FILE_BYTES = 1_000_000
_HEADER = ("The workspace gives you these rules (from AGENTS.md and .polaris/rules/*.md). Follow them; "
           "the user's message wins where they conflict.")


@dataclass(frozen=True)
class RuleFile:
    """One rules file: its workspace path, its size, and how much of it the model was given."""

    path: str
    chars: int
    included_chars: int
    #: Why nothing (or not everything) was included, for the listing: None when it all was.
    note: str | None = None

    @property
    def truncated(self) -> bool:
        return self.included_chars < self.chars

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "chars": self.chars, "includedChars": self.included_chars,
                "truncated": self.truncated, "note": self.note}


@dataclass(frozen=True)
class Rules:
    """The rules of one turn: the files found, and the text added to the system prompt ("" if none)."""

    files: tuple[RuleFile, ...]
    text: str
    max_chars: int

    def to_json(self) -> dict[str, Any]:
        return {"files": [f.to_json() for f in self.files], "maxChars": self.max_chars,
                "includedChars": sum(f.included_chars for f in self.files),
                "truncated": any(f.truncated for f in self.files)}


def _candidates(root: Path) -> tuple[list[Path], int]:
    """AGENTS.md first, then ``.polaris/rules/*.md`` by name; and how many rule files were left out."""
    found = [root / RULES_FILE] if (root / RULES_FILE).is_file() else []
    folder = root / RULES_DIR
    extra = sorted(p for p in folder.glob("*.md") if p.is_file()) if folder.is_dir() else []
    return found + extra[:MAX_RULE_FILES], max(0, len(extra) - MAX_RULE_FILES)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except (OSError, ValueError):
        return False
    return True


def read_rules(root: Path, max_chars: int) -> Rules:
    """Read the rules of the workspace at ``root`` (blocking: call :func:`load_rules` on a loop)."""
    root = root.resolve()
    files: list[RuleFile] = []
    parts: list[str] = []
    budget = max(0, max_chars)
    paths, left_out = _candidates(root)
    for path in paths:
        rel = path.relative_to(root).as_posix()
        if not _inside(path, root):
            files.append(RuleFile(rel, 0, 0, "skipped: it leads outside the workspace"))
            continue
        try:
            with path.open("rb") as f:  # a huge file is read only as far as it could be used
                raw = f.read(MAX_RULE_FILE_BYTES + 1)
            text = raw[:MAX_RULE_FILE_BYTES].decode("utf-8", errors="replace").strip()
            # the size of a file read only in part is its byte count (close enough to say "cut")
            chars = len(text) if len(raw) <= MAX_RULE_FILE_BYTES else max(len(text) + 1, path.stat().st_size)
        except OSError as exc:
            log.warning("polaris: cannot read rules file %s: %s", rel, exc)
            files.append(RuleFile(rel, 0, 0, f"skipped: {exc.strerror or exc}"))
            continue
        if not text:
            files.append(RuleFile(rel, 0, 0, "empty"))
            continue
        kept = text[:budget]
        budget -= len(kept)
        note = None
        if len(kept) < chars:
            note = f"cut at {len(kept):,} of {chars:,} characters (rules_max_chars = {max_chars:,})"
        files.append(RuleFile(rel, chars, len(kept), note))
        if kept:
            block = f"--- {rel} ---\n{kept}"
            if note:
                block += f"\n[{rel} was {note}; the rest was not given to you]"
            parts.append(block)
        elif note:
            parts.append(f"[{rel} was left out: the rules limit of {max_chars:,} characters was reached]")
    if left_out:
        parts.append(f"[{left_out} more files in {RULES_DIR} were left out (at most {MAX_RULE_FILES} are read)]")
    text = "\n\n".join([_HEADER, *parts]) if parts else ""
    return Rules(tuple(files), text, max_chars)


async def load_rules(root: Path, max_chars: int) -> Rules:
    """:func:`read_rules` off the event loop (once per turn: edits apply to the next message)."""
    return await asyncio.to_thread(read_rules, root, max_chars)
