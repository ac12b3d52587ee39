"""Workspace files for an ``@``-mention in the chat input (issue 13, item 2): a fuzzy match of
what the user typed over the files ``findFilesByPattern`` sees (the same walker, so the same
``.gitignore`` / ``.polarisignore`` rules and skipped folders).

Fuzzy: every character of the query occurs in the path in order (case-insensitive). Better
matches come first: the query inside the file name, then inside the path, then a subsequence
whose characters sit close together; ties go to shorter paths, then alphabetical order.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from polaris_jupyter.errors import InvalidInput
from polaris_jupyter.tools.ignore import walk_files

__all__ = ["MAX_MENTION_LIMIT", "MAX_QUERY_CHARS", "MAX_SCANNED_FILES", "mention_files", "score_path"]

#: At most this many paths in one answer.
MAX_MENTION_LIMIT = 200
#: A longer query is a mistake (a path is rarely longer); 400, not a slow scan.
MAX_QUERY_CHARS = 512
#: The walk stops after this many files, so a huge workspace answers while the user types.
MAX_SCANNED_FILES = 50_000


def score_path(path: str, query: str) -> float | None:
    """How well ``path`` matches the lower-cased ``query`` (higher is better); None: no match."""
    if not query:
        return 0.0
    lower = path.lower()
    name = lower.rsplit("/", 1)[-1]
    if query in name:
        return 3000.0 - name.index(query) - (len(name) - len(query)) / 100
    if query in lower:
        return 2000.0 - lower.index(query) / 10
    positions: list[int] = []
    start = 0
    for char in query:
        found = lower.find(char, start)
        if found < 0:
            return None
        positions.append(found)
        start = found + 1
    spread = positions[-1] - positions[0] + 1 - len(query)  # characters between the matched ones
    in_name = sum(1 for p in positions if p >= len(lower) - len(name))
    return 1000.0 - spread + in_name * 5


def _mention_files(root: str, query: str, limit: int) -> list[str]:
    root = os.path.realpath(root)
    needle = query.strip().lower()
    scored: list[tuple[float, int, str]] = []
    for scanned, rel in enumerate(walk_files(root)):
        if scanned >= MAX_SCANNED_FILES:
            break
        score = score_path(rel, needle)
        if score is not None:
            scored.append((-score, len(rel), rel))
    scored.sort()
    return [rel for _, _, rel in scored[:limit]]


async def mention_files(root: str | Path, query: str, limit: int = 20) -> dict[str, list[str]]:
    """``{"paths": [...]}``: up to ``limit`` workspace files matching ``query``, best first (the
    walk runs in a thread: it reads directories). An empty query lists the shortest paths first."""
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"query must be at most {MAX_QUERY_CHARS} characters")
    if not 1 <= limit <= MAX_MENTION_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_MENTION_LIMIT}")
    paths = await asyncio.to_thread(_mention_files, str(root), query, limit)
    return {"paths": paths}
