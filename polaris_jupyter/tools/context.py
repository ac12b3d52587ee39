"""Context tool: getRelevantFiles ranks workspace files for a query, with the reasons.

Signals (weights in ``WEIGHTS``): BM25 text match of the query against file contents and
paths; imports between a candidate and ``currentFile`` (both directions); symbols shared with
``currentFile`` (defined in one, used in the other); files recently edited by runs (through
``ctx.edits.recent_paths()``); folder proximity to ``currentFile``; file type (source over
data, same language, a test and the code it tests). The index (``context_index``) is built
once per workspace in a worker thread and refreshed by mtime on every call.
"""

from __future__ import annotations

import asyncio
import math
import os
import posixpath
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from polaris_jupyter.tools._args import check_args, get_int, get_str
from polaris_jupyter.tools.base import Tool, ToolContext, ToolError, ToolResult
from polaris_jupyter.tools.context_index import MAX_INDEX_BYTES, DocInfo, WorkspaceIndex
from polaris_jupyter.tools.context_terms import (
    PY_SUFFIXES,
    TS_SUFFIXES,
    identifiers_of,
    module_keys,
    terms_of,
    tested_stem,
)
from polaris_jupyter.tools.sandbox import relative_to_root, resolve_path
from polaris_jupyter.tools.search_text import path_key

__all__ = ["TOOLS", "WEIGHTS", "Ranked", "rank_files"]

WEIGHTS = {
    "text": 3.0,
    "imported_by_current": 2.5,
    "imports_current": 2.0,
    "shared_symbols": 1.5,
    "recent_edit": 1.0,
    "same_folder": 1.0,
    "near_folder": 0.5,
    "test_pair": 1.5,
    "same_language": 0.3,
    "source_file": 0.2,
}
#: Seconds one call may spend indexing new files; a first call on a huge tree answers from a
#: partial index and the next calls carry on (``indexComplete`` in the result says which).
INDEX_BUDGET_S = 3.0
BM25_K1 = 1.2
BM25_B = 0.75
MAX_FILES = 20
MAX_TEXT_CANDIDATES = 300
MAX_FOLDER_CANDIDATES = 200
#: Names defined or used in more files than this are too generic to say two files are related.
MAX_SYMBOL_SPREAD = 50
_SOURCE_SUFFIXES = frozenset(PY_SUFFIXES + TS_SUFFIXES)


@dataclass
class Ranked:
    path: str
    score: float = 0.0
    reasons: list[str] = field(default_factory=list)

    def add(self, weight: float, reason: str) -> None:
        if weight > 0:
            self.score += weight
            self.reasons.append(reason)


def _family(rel: str) -> str:
    suffix = posixpath.splitext(rel)[1].lower()
    if suffix in PY_SUFFIXES:
        return "python"
    if suffix in TS_SUFFIXES:
        return "ts/js"
    return suffix or "other"


def _bm25(index: WorkspaceIndex, query_terms: list[str]) -> dict[int, tuple[float, list[str]]]:
    n_docs = max(len(index.docs), 1)
    avg_len = max(index.total_length / n_docs, 1.0)
    scores: dict[int, float] = defaultdict(float)
    matched: dict[int, list[str]] = defaultdict(list)
    for term in query_terms:
        posting = index.postings.get(term)
        if not posting:
            continue
        idf = math.log(1 + (n_docs - len(posting) + 0.5) / (len(posting) + 0.5))
        for doc_id, tf in posting.items():
            rel = index.by_id.get(doc_id)
            length = index.docs[rel].length if rel is not None else avg_len
            scores[doc_id] += idf * tf * (BM25_K1 + 1) / (tf + BM25_K1 * (1 - BM25_B + BM25_B * length / avg_len))
            matched[doc_id].append(term)
    top = sorted(scores.items(), key=lambda kv: -kv[1])[:MAX_TEXT_CANDIDATES]
    return {doc_id: (score, matched[doc_id]) for doc_id, score in top}


def _current_doc(index: WorkspaceIndex, current: str) -> tuple[DocInfo | None, set[str]]:
    """The current file's index entry and the identifiers it uses (read fresh)."""
    try:
        with open(os.path.join(index.root, current), "rb") as fh:
            text = fh.read(MAX_INDEX_BYTES).decode("utf-8", "replace")
    except OSError:
        text = ""
    return index.docs.get(current), identifiers_of(text)


def _resolve_imports(index: WorkspaceIndex, doc: DocInfo) -> set[str]:
    out: set[str] = set()
    for key in doc.imports:
        owners = index.key_owner.get(key)
        if owners and len(owners) <= 3:  # an ambiguous short name resolves to nothing
            out |= owners
    out.discard(doc.rel)
    return out


def rank_files(
    index: WorkspaceIndex, query: str, current: str | None, recent: list[str], max_files: int
) -> list[Ranked]:
    """Rank the (already refreshed) index for ``query``. Blocking; call with the index lock held."""
    query_terms = [t for t in terms_of(query) if t]
    ranked: dict[str, Ranked] = {}

    def entry(rel: str) -> Ranked:
        if rel not in ranked:
            ranked[rel] = Ranked(rel)
        return ranked[rel]

    text_scores = _bm25(index, query_terms)
    best = max((s for s, _ in text_scores.values()), default=0.0)
    for doc_id, (score, terms) in text_scores.items():
        rel = index.by_id.get(doc_id)
        if rel is not None and best > 0:
            entry(rel).add(WEIGHTS["text"] * score / best, f"text match: {', '.join(sorted(set(terms))[:5])}")
    if current is not None:
        _current_signals(index, current, entry)
    for position, rel in enumerate(dict.fromkeys(recent)):
        if rel in index.docs and rel != current:
            entry(rel).add(WEIGHTS["recent_edit"] * (1 - position / max(len(recent), 1)), "recently edited")
    current_family = _family(current) if current else None
    for rel, item in ranked.items():
        if posixpath.splitext(rel)[1].lower() in _SOURCE_SUFFIXES:
            item.add(WEIGHTS["source_file"], "source file")
        if current_family is not None and _family(rel) == current_family:
            item.add(WEIGHTS["same_language"], f"same language ({current_family})")
    ranked.pop(current or "", None)
    results = sorted(ranked.values(), key=lambda r: (-round(r.score, 6), path_key(r.path)))
    for item in results:
        item.score = round(item.score, 3)
    return results[:max_files]


def _current_signals(index: WorkspaceIndex, current: str, entry: Any) -> None:
    doc, used_idents = _current_doc(index, current)
    if doc is not None:
        for rel in sorted(_resolve_imports(index, doc)):
            entry(rel).add(WEIGHTS["imported_by_current"], "imported by currentFile")
        for key in module_keys(current):
            for rel in sorted(index.importers.get(key, ())):
                if rel != current:
                    entry(rel).add(WEIGHTS["imports_current"], "imports currentFile")
        users: Counter[str] = Counter()
        for sym in sorted(doc.symbols)[:200]:
            posting = index.postings.get(sym.lower(), {})
            if len(posting) > MAX_SYMBOL_SPREAD * 4:
                continue
            for doc_id in posting:
                user = index.by_id.get(doc_id)
                if user is not None and user != current:
                    users[user] += 1
        for rel, count in users.most_common(MAX_TEXT_CANDIDATES):
            entry(rel).add(WEIGHTS["shared_symbols"] * min(1.0, count / 3), f"uses {count} symbol(s) of currentFile")
    defined: dict[str, list[str]] = defaultdict(list)
    for ident in used_idents:
        owners = index.symbol_defs.get(ident, ())
        if len(owners) > MAX_SYMBOL_SPREAD:
            continue
        for rel in owners:
            if rel != current:
                defined[rel].append(ident)
    for rel, names in sorted(defined.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:MAX_TEXT_CANDIDATES]:
        entry(rel).add(WEIGHTS["shared_symbols"] * min(1.0, len(names) / 3),
                       f"defines {', '.join(sorted(names)[:3])} used in currentFile")
    folder = posixpath.dirname(current)
    same = sorted(index.folder_files.get(folder, ()))[:MAX_FOLDER_CANDIDATES]
    for rel in same:
        if rel != current:
            entry(rel).add(WEIGHTS["same_folder"], "same folder")
    near: list[str] = []
    if folder:
        near += sorted(index.folder_files.get(posixpath.dirname(folder), ()))
    for sub_folder in sorted(index.folder_files):
        if sub_folder and posixpath.dirname(sub_folder) == folder and sub_folder != folder:
            near += sorted(index.folder_files[sub_folder])
    for rel in near[:MAX_FOLDER_CANDIDATES]:
        entry(rel).add(WEIGHTS["near_folder"], "neighbouring folder")
    stem = posixpath.splitext(posixpath.basename(current))[0]
    subject = tested_stem(stem)
    if subject is not None:
        for rel in sorted(index.stem_files.get(subject, ())):
            entry(rel).add(WEIGHTS["test_pair"], "code tested by currentFile")
    for rel in sorted(index.test_files.get(stem, ())):
        if rel != current:
            entry(rel).add(WEIGHTS["test_pair"], "test of currentFile")


async def _relevant_files_tool(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    check_args("getRelevantFiles", args, ("query", "currentFile", "maxFiles"), required=("query",))
    query = (get_str(args, "query", max_chars=2000) or "").strip()
    if not query:
        raise ToolError("getRelevantFiles: query must not be empty")
    max_files = get_int(args, "maxFiles", default=5, min_value=1, max_value=MAX_FILES) or 5
    current: str | None = None
    if get_str(args, "currentFile"):
        abs_current = resolve_path(ctx.root, args.get("currentFile"), must_exist=True)
        if not abs_current.is_file():
            raise ToolError(f"currentFile {args.get('currentFile')!r} is not a file")
        current = relative_to_root(ctx.root, abs_current)
    recent: list[str] = []
    if ctx.edits is not None:
        try:
            recent = list(await ctx.edits.recent_paths())
        except Exception as exc:  # the run history is a hint, never a reason to fail
            ctx.log.warning("getRelevantFiles: recent edits unavailable: %s", exc)
    index = await asyncio.to_thread(WorkspaceIndex.for_root, ctx.root)

    def run() -> tuple[list[Ranked], int, int]:
        index.refresh(also_check=[current, *recent] if current else recent, budget_s=INDEX_BUDGET_S)
        with index.lock:
            return rank_files(index, query, current, recent, max_files), len(index.docs), len(index.pending)

    results, indexed, pending = await asyncio.to_thread(run)
    if not results:
        text = f"No files look relevant to {query!r}" + (f" from {current}" if current else "") + "."
    else:
        lines = [f"{len(results)} file(s) most relevant to {query!r}" + (f" (current file {current})" if current else "") + ":"]
        lines += [f"{i}. {r.path} (score {r.score}): {'; '.join(r.reasons)}" for i, r in enumerate(results, 1)]
        text = "\n".join(lines)
    if pending:
        text += (f"\n(The workspace index is still being built: {indexed} of {indexed + pending} files so far; "
                 "later calls rank with more of it.)")
    return ToolResult(
        text=text,
        summary=f"{len(results)} relevant file(s) for {query!r}",
        data={"files": [{"path": r.path, "score": r.score, "reasons": r.reasons} for r in results],
              "indexedFiles": indexed, "indexComplete": not pending},
    )


TOOLS: list[Tool] = [
    Tool(
        name="getRelevantFiles",
        description=(
            "Rank the workspace files most relevant to a task or question. Combines text match (BM25 over contents "
            "and paths), imports to/from currentFile, symbols shared with currentFile, recently edited files, folder "
            "proximity and file type. Each result has a score and the reasons for it."
        ),
        parameters={
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What you are working on, e.g. 'user login validation'."},
                "currentFile": {"type": "string", "description": "Optional file you are editing, relative to the workspace root."},
                "maxFiles": {"type": "integer", "minimum": 1, "maximum": MAX_FILES, "default": 5,
                             "description": "How many files to return (default 5, at most 20)."},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
        fn=_relevant_files_tool,
        group="context",
        path_params=("currentFile",),
    ),
]
