"""Proposed cell edits: the model suggests a cell's new source, the user applies or discards it.

``proposeCellEdit`` writes nothing: it records a :class:`Proposal` (the cell's source now, the
proposed source, their diff) and the tool card shows the diff. :func:`apply_proposal` (route
``POST /proposals/{id}/apply``) writes the new source through the edit journal under the
proposing run's id, so reverting that run undoes it like any other tool edit; it is refused
with a Conflict, changing nothing, when the cell changed since the proposal (or is gone) or the
proposal was already decided. :func:`discard_proposal` only marks it.

Proposals live in table ``cell_proposals`` of the run store (:data:`PROPOSALS_SCHEMA`; the runtime
holds the one :class:`SqliteProposals`), so a proposal made by a finished run can still be applied
after a restart. A card finds its proposal
by run and tool-call id (``GET /runs/{runId}/proposals``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import weakref
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from polaris_jupyter.errors import Conflict, NotFound
from polaris_jupyter.jobs import Schema, SqliteStore, new_id
from polaris_jupyter.tools._args import check_args, get_str, os_errors_as_tool_errors
from polaris_jupyter.tools.base import EditRecorder, Tool, ToolContext, ToolError, ToolResult
from polaris_jupyter.tools.edits import make_diff
from polaris_jupyter.tools.notebook import CELL_ARGS, cell_ref, load_notebook, notebook_schema, save_notebook
from polaris_jupyter.tools.notebook_format import cell_source, find_cell

__all__ = [
    "PROPOSALS_SCHEMA",
    "TOOLS",
    "MemoryProposals",
    "Proposal",
    "ProposalStore",
    "SqliteProposals",
    "announce",
    "apply_proposal",
    "discard_proposal",
]

MAX_PROPOSED_SOURCE_CHARS = 200_000
PENDING, APPLIED, DISCARDED = "pending", "applied", "discarded"


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Proposal:
    """One proposed edit of one cell."""

    id: str
    run_id: str
    call_id: str | None
    path: str
    cell_index: int
    cell_id: str | None
    cell_type: str
    before_source: str
    source: str
    diff: str
    explanation: str
    status: str
    created_at: str
    decided_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "runId": self.run_id, "toolCallId": self.call_id, "path": self.path,
            "cellIndex": self.cell_index, "cellId": self.cell_id, "cellType": self.cell_type,
            "beforeSource": self.before_source, "source": self.source, "diff": self.diff,
            "explanation": self.explanation, "status": self.status, "createdAt": self.created_at,
            "decidedAt": self.decided_at,
        }


class ProposalStore(Protocol):
    """Where proposals are kept (``ToolContext.proposals``)."""

    async def record(self, proposal: Proposal) -> None: ...

    async def get(self, proposal_id: str) -> Proposal | None: ...

    async def for_run(self, run_id: str) -> list[Proposal]: ...

    async def decide(self, proposal_id: str, status: str, when: str) -> bool:
        """Pending → ``status``; False when the proposal was no longer pending."""
        ...


class MemoryProposals:
    """Proposals in memory (tests, in-process kernels without a store)."""

    def __init__(self) -> None:
        self._items: dict[str, Proposal] = {}

    async def record(self, proposal: Proposal) -> None:
        self._items[proposal.id] = proposal

    async def get(self, proposal_id: str) -> Proposal | None:
        return self._items.get(proposal_id)

    async def for_run(self, run_id: str) -> list[Proposal]:
        return [p for p in self._items.values() if p.run_id == run_id]

    async def decide(self, proposal_id: str, status: str, when: str) -> bool:
        proposal = self._items.get(proposal_id)
        if proposal is None or proposal.status != PENDING:
            return False
        proposal.status, proposal.decided_at = status, when
        return True


#: Table ``cell_proposals`` in the run store's file (version 1).
PROPOSALS_SCHEMA = Schema(
    "cell_proposals",
    migrations=(
        (
            "CREATE TABLE IF NOT EXISTS cell_proposals (id TEXT PRIMARY KEY, run_id TEXT NOT NULL, call_id TEXT,"
            " path TEXT NOT NULL, cell_index INTEGER NOT NULL, cell_id TEXT, cell_type TEXT NOT NULL,"
            " before_source TEXT NOT NULL, source TEXT NOT NULL, diff TEXT NOT NULL, explanation TEXT NOT NULL,"
            " status TEXT NOT NULL, created_at TEXT NOT NULL, decided_at TEXT)",
            "CREATE INDEX IF NOT EXISTS cell_proposals_run ON cell_proposals (run_id, created_at)",
        ),
    ),
)
_COLUMNS = ("id", "run_id", "call_id", "path", "cell_index", "cell_id", "cell_type", "before_source", "source",
            "diff", "explanation", "status", "created_at", "decided_at")


def _row(r: sqlite3.Row) -> Proposal:
    return Proposal(*(r[i] for i in range(len(_COLUMNS))))


class SqliteProposals:
    """Proposals in the run store's SQLite file, written through its writer thread."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        store.register(PROPOSALS_SCHEMA)
        self._ready = False

    async def _open(self) -> SqliteStore:
        if not self._ready:
            await self.store.ensure_schema(PROPOSALS_SCHEMA)
            self._ready = True
        return self.store

    async def record(self, proposal: Proposal) -> None:
        store = await self._open()
        values = tuple(getattr(proposal, name) for name in _COLUMNS)
        store.execute(f"INSERT INTO cell_proposals ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                      values)
        await store.commit()

    async def get(self, proposal_id: str) -> Proposal | None:
        store = await self._open()
        rows = await store.query(f"SELECT {', '.join(_COLUMNS)} FROM cell_proposals WHERE id = ?", (proposal_id,))
        return _row(rows[0]) if rows else None

    async def for_run(self, run_id: str) -> list[Proposal]:
        store = await self._open()
        rows = await store.query(
            f"SELECT {', '.join(_COLUMNS)} FROM cell_proposals WHERE run_id = ? ORDER BY created_at, rowid", (run_id,)
        )
        return [_row(r) for r in rows]

    async def decide(self, proposal_id: str, status: str, when: str) -> bool:
        store = await self._open()

        def update(conn: sqlite3.Connection) -> int:
            return int(conn.execute("UPDATE cell_proposals SET status = ?, decided_at = ? WHERE id = ? AND status = ?",
                                    (status, when, proposal_id, PENDING)).rowcount)

        return await store.write(update) == 1


async def propose_cell_edit(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    args = check_args("proposeCellEdit", args, ("path", "index", "cellId", "source", "explanation"), ("path", "source"))
    index, cell_id = cell_ref(args)
    source = get_str(args, "source", max_chars=MAX_PROPOSED_SOURCE_CHARS) or ""
    explanation = get_str(args, "explanation", max_chars=4000) or ""
    if ctx.proposals is None:
        raise ToolError("proposals cannot be recorded here; use editNotebookCell to change the cell")
    _, rel, _, nb = await load_notebook(ctx, get_str(args, "path"), writable=True)
    assert nb is not None
    position = find_cell(nb, rel, index, cell_id)
    cell = nb.cells[position]
    before = cell_source(cell)
    if before == source:
        raise ToolError(f"the proposed source is the same as cell {position}'s source now; propose a change")
    label = f"{rel} (cell {position})"
    diff = make_diff(label, before.encode(), source.encode())
    proposal = Proposal(
        id=new_id("prop"), run_id=ctx.run_id or "", call_id=ctx.call_id, path=rel, cell_index=position,
        cell_id=cell.get("id"), cell_type=str(cell.cell_type), before_source=before, source=source, diff=diff,
        explanation=explanation, status=PENDING, created_at=_now_iso(),
    )
    await ctx.proposals.record(proposal)
    return ToolResult(
        f"Proposed a new source for cell {position} of {rel} (proposal {proposal.id}). The notebook is unchanged: "
        "the user sees the diff and chooses Apply or Discard.",
        summary=f"Proposed an edit of cell {position} of {rel}", diff=diff, data=proposal.to_json(),
    )


async def _decided(proposals: ProposalStore, proposal_id: str) -> Proposal:
    proposal = await proposals.get(proposal_id)
    if proposal is None:
        raise NotFound(f"no proposal with id {proposal_id!r}")
    if proposal.status != PENDING:
        raise Conflict(f"proposal {proposal_id} was already {proposal.status} ({proposal.decided_at})")
    return proposal


_APPLYING: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()


async def apply_proposal(proposals: ProposalStore, proposal_id: str, *, root: Path,
                         journal: EditRecorder | None) -> Proposal:
    """Write the proposed source into the cell (journalled under the proposing run, so it is
    revertible) and mark the proposal applied. Conflict, changing nothing, when the proposal is
    decided or the cell is gone or changed since."""
    lock = _APPLYING.setdefault(proposals, asyncio.Lock())
    async with lock:  # one decision at a time: the check and the write are not interleaved
        proposal = await _decided(proposals, proposal_id)
        ctx = ToolContext(root=root, run_id=proposal.run_id, edits=journal)
        try:
            target, rel, before, nb = await load_notebook(ctx, proposal.path, writable=True)
            assert nb is not None
            position = find_cell(nb, rel, None if proposal.cell_id else proposal.cell_index, proposal.cell_id)
        except ToolError as exc:
            raise Conflict(f"the proposal cannot be applied: {exc}") from None
        cell = nb.cells[position]
        if cell_source(cell) != proposal.before_source:
            raise Conflict(f"cell {position} of {rel} changed since the proposal; nothing was written. "
                           "Ask for a new fix of the cell as it is now.")
        cell["source"] = proposal.source
        if cell.cell_type == "code":
            cell["outputs"], cell["execution_count"] = [], None
        try:
            await save_notebook(ctx, target, rel, before, nb)
        except ToolError as exc:
            raise Conflict(f"the proposal cannot be applied: {exc}") from None
        when = _now_iso()
        await proposals.decide(proposal_id, APPLIED, when)
        proposal.status, proposal.decided_at, proposal.cell_index = APPLIED, when, position
    return proposal


async def discard_proposal(proposals: ProposalStore, proposal_id: str) -> Proposal:
    """Mark the proposal discarded (the notebook is not touched)."""
    lock = _APPLYING.setdefault(proposals, asyncio.Lock())
    async with lock:
        proposal = await _decided(proposals, proposal_id)
        when = _now_iso()
        await proposals.decide(proposal_id, DISCARDED, when)
        proposal.status, proposal.decided_at = DISCARDED, when
    return proposal


async def announce(engine: Any, proposal: Proposal) -> None:
    """Tell every open chat view of the proposing run's conversation (``proposal.updated``), so
    a card shows Applied / Discarded wherever it is open."""
    conversation_id = None
    try:
        run = await engine.get_run(proposal.run_id)
        payload = run.payload if isinstance(run.payload, dict) else {}
        conversation_id = payload.get("conversationId") if isinstance(payload.get("conversationId"), str) else None
    except Exception:  # the run was pruned: still tell the views that listen to everything
        pass
    engine.emit("proposal.updated", {"proposal": proposal.to_json()}, conversation_id=conversation_id)


TOOLS: list[Tool] = [
    Tool(
        name="proposeCellEdit",
        description=(
            "Propose a new source for one notebook cell (by 0-based index or cellId) WITHOUT writing it: the user "
            "sees the diff and applies or discards it. Use it to fix a failing cell; give the complete new source "
            "and a one-line explanation."
        ),
        parameters=notebook_schema(
            {**CELL_ARGS, "source": {"type": "string", "description": "The complete proposed source of the cell."},
             "explanation": {"type": "string", "description": "What the change fixes, in one line."}},
            ["path", "source"],
        ),
        fn=os_errors_as_tool_errors(propose_cell_edit),
        group="notebook",
    ),
]
