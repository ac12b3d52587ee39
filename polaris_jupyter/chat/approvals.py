"""Approvals: a tool call held for the user's consent, as a stored row, and the decisions on it.

An approval is Trigger.dev's waitpoint token for one tool call of a chat run: created pending
(with the tool, its arguments and the diff an edit would apply) when the call is held, decided
``approved`` or ``denied`` by the user (``scope`` ``once``, or ``run``: every call of that run
that would ask is approved from then on), or ``expired`` when ``approval_timeout_s`` passed
without an answer (a timeout denies) or when its run ended some other way (cancelled).

The run waits in WAITING meanwhile (``chat/approval_gate.py`` holds the turn, the engine
releases its slot). :meth:`ApprovalService.decide` stores the decision and, once no approval of
the run is pending, resumes the run; :meth:`ApprovalService.recover` does the same at start for
runs whose approvals were decided before a restart. The rows live in table ``approvals`` of the
run store (:data:`APPROVALS_SCHEMA`), so all of this survives a ``kill -9``.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from polaris_jupyter.errors import Conflict, InvalidInput, NotFound
from polaris_jupyter.jobs import RunNotFound, RunStatus, Schema, SqliteStore, iso, new_id

if TYPE_CHECKING:
    from polaris_jupyter.chat.service import ChatService

__all__ = ["APPROVALS_SCHEMA", "Approval", "ApprovalScope", "ApprovalService", "ApprovalStatus", "ApprovalStore"]

APPROVALS_SCHEMA = Schema(
    "approvals",
    migrations=(
        (
            "CREATE TABLE IF NOT EXISTS approvals (num INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, "
            "run_id TEXT NOT NULL, step INTEGER NOT NULL, message_id TEXT, conversation_id TEXT, "
            "tool_call_id TEXT NOT NULL, tool_name TEXT NOT NULL, arguments TEXT NOT NULL, diff TEXT, "
            "access TEXT NOT NULL, status TEXT NOT NULL, scope TEXT, reason TEXT, created_at REAL NOT NULL, "
            "expires_at REAL, decided_at REAL)",
            "CREATE UNIQUE INDEX IF NOT EXISTS approvals_call ON approvals(run_id, step, tool_call_id)",
            "CREATE INDEX IF NOT EXISTS approvals_status ON approvals(status, num)",
        ),
    ),
)
_COLUMNS = (
    "id", "run_id", "step", "message_id", "conversation_id", "tool_call_id", "tool_name", "arguments", "diff",
    "access", "status", "scope", "reason", "created_at", "expires_at", "decided_at",
)
_UPSERT = (
    f"INSERT INTO approvals ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
    f"ON CONFLICT(id) DO UPDATE SET {', '.join(f'{c}=excluded.{c}' for c in _COLUMNS[1:])}"
)
#: What the model is told when a call was refused, as the call's result.
DENIED_TEXT = "the user denied this tool call; it was not run. Do not try it again unless the user asks."
EXPIRED_TEXT = "the user denied this tool call: nobody answered within {timeout}; it was not run."


class ApprovalStatus(str, enum.Enum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"


class ApprovalScope(str, enum.Enum):
    ONCE = "once"
    RUN = "run"


@dataclass(frozen=True)
class Approval:
    id: str
    run_id: str
    step: int
    message_id: str | None
    conversation_id: str | None
    tool_call_id: str
    tool_name: str
    arguments: dict[str, Any]
    diff: str | None
    access: str
    status: ApprovalStatus
    created_at: float
    expires_at: float | None = None
    scope: ApprovalScope | None = None
    reason: str | None = None
    decided_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "runId": self.run_id,
            "messageId": self.message_id,
            "conversationId": self.conversation_id,
            "toolCallId": self.tool_call_id,
            "toolName": self.tool_name,
            "arguments": self.arguments,
            "diff": self.diff,
            "access": self.access,
            "status": self.status.value,
            "scope": None if self.scope is None else self.scope.value,
            "reason": self.reason,
            "createdAt": iso(self.created_at),
            "expiresAt": iso(self.expires_at),
            "decidedAt": iso(self.decided_at),
        }

    def card(self) -> dict[str, Any]:
        """What a tool-call card carries about its approval."""
        return {"id": self.id, "status": self.status.value, "scope": None if self.scope is None else self.scope.value,
                "expiresAt": iso(self.expires_at), "reason": self.reason}

    def to_row(self) -> tuple[Any, ...]:
        return (
            self.id, self.run_id, self.step, self.message_id, self.conversation_id, self.tool_call_id, self.tool_name,
            json.dumps(self.arguments), self.diff, self.access, self.status.value,
            None if self.scope is None else self.scope.value, self.reason, self.created_at, self.expires_at,
            self.decided_at,
        )


def _approval(row: Any) -> Approval:
    return Approval(
        id=row["id"], run_id=row["run_id"], step=row["step"], message_id=row["message_id"],
        conversation_id=row["conversation_id"], tool_call_id=row["tool_call_id"], tool_name=row["tool_name"],
        arguments=json.loads(row["arguments"]), diff=row["diff"], access=row["access"],
        status=ApprovalStatus(row["status"]), created_at=row["created_at"], expires_at=row["expires_at"],
        scope=ApprovalScope(row["scope"]) if row["scope"] else None, reason=row["reason"],
        decided_at=row["decided_at"],
    )


class ApprovalStore:
    """Approval rows, written through the run store's writer (same commits as runs and events)."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        store.register(APPROVALS_SCHEMA)

    async def migrate(self) -> None:
        await self.store.ensure_schema(APPROVALS_SCHEMA)

    def put(self, approval: Approval) -> None:
        self.store.execute(_UPSERT, approval.to_row())

    async def get(self, approval_id: str) -> Approval | None:
        rows = await self.store.query("SELECT * FROM approvals WHERE id = ?", (approval_id,))
        return _approval(rows[0]) if rows else None

    async def for_run(self, run_id: str) -> list[Approval]:
        rows = await self.store.query("SELECT * FROM approvals WHERE run_id = ? ORDER BY num", (run_id,))
        return [_approval(r) for r in rows]

    async def list(self, status: ApprovalStatus | None, limit: int = 200) -> list[Approval]:
        if status is None:
            rows = await self.store.query("SELECT * FROM approvals ORDER BY num DESC LIMIT ?", (limit,))
        else:
            rows = await self.store.query(
                "SELECT * FROM approvals WHERE status = ? ORDER BY num DESC LIMIT ?", (status.value, limit)
            )
        return [_approval(r) for r in rows]


def parse_decision(decision: Any, scope: Any) -> tuple[ApprovalStatus, ApprovalScope]:
    if decision not in ("approve", "deny"):
        raise InvalidInput(f"decision must be 'approve' or 'deny', got {decision!r}")
    try:
        parsed_scope = ApprovalScope(scope if scope is not None else "once")
    except ValueError:
        raise InvalidInput(f"scope must be 'once' or 'run', got {scope!r}") from None
    return (ApprovalStatus.APPROVED if decision == "approve" else ApprovalStatus.DENIED), parsed_scope


class ApprovalService:
    """Lists, decides and expires approvals, and resumes the runs that wait on them."""

    def __init__(self, chat: ChatService) -> None:
        self.chat = chat
        self.engine = chat.engine
        self.store = ApprovalStore(chat.engine.store)

    @property
    def timeout_s(self) -> float:
        return float(self.chat.runtime.config.approval_timeout_s)

    def new(self, **fields: Any) -> Approval:
        now = self.engine.clock.now()
        timeout_s = self.timeout_s
        return Approval(id=new_id("appr"), status=ApprovalStatus.PENDING, created_at=now,
                        expires_at=now + timeout_s if timeout_s > 0 else None, **fields)

    async def list(self, status: str | None = None) -> list[Approval]:
        """Approvals, newest first; one whose run ended without a decision is expired first."""
        wanted = None
        if status is not None:
            try:
                wanted = ApprovalStatus(status)
            except ValueError:
                names = ", ".join(s.value for s in ApprovalStatus)
                raise InvalidInput(f"unknown approval status {status!r}; use one of {names}") from None
        found = await self.store.list(wanted)
        out = []
        for approval in found:
            if approval.status is ApprovalStatus.PENDING and await self._run_ended(approval.run_id):
                approval = await self._decide_row(approval, ApprovalStatus.EXPIRED, None, "the run ended without a decision")
            if wanted is None or approval.status is wanted:
                out.append(approval)
        await self.engine.store.commit()
        return out

    async def decide(self, approval_id: str, decision: Any, scope: Any = None) -> Approval:
        """Approve or deny; 404 for an unknown id, 409 once decided (or when its run ended)."""
        status, parsed_scope = parse_decision(decision, scope)
        approval = await self.store.get(approval_id)
        if approval is None:
            raise NotFound(f"no approval with id {approval_id!r}")
        if approval.status is not ApprovalStatus.PENDING:
            raise Conflict(f"approval {approval_id} is already {approval.status.value}")
        if await self._run_ended(approval.run_id):
            await self._decide_row(approval, ApprovalStatus.EXPIRED, None, "the run ended without a decision")
            await self.engine.store.commit()
            raise Conflict(f"run {approval.run_id} has ended; approval {approval_id} no longer waits for a decision")
        decided = await self._decide_row(approval, status, parsed_scope, None)
        if parsed_scope is ApprovalScope.RUN:  # the run's other pending calls get the same answer
            for other in await self.store.for_run(approval.run_id):
                if other.status is ApprovalStatus.PENDING and other.id != approval.id:
                    await self._decide_row(other, status, parsed_scope, None)
        await self.engine.store.commit()
        await self.resume_if_decided(approval.run_id)
        return decided

    async def expire(self, approval: Approval, reason: str) -> Approval:
        """The timeout passed (called by the gate when the run continues at its deadline)."""
        return await self._decide_row(approval, ApprovalStatus.EXPIRED, None, reason)

    async def expire_run(self, run_id: str, reason: str) -> None:
        """The run ended (cancelled while it waited): nothing of it waits for a decision any more."""
        for approval in await self.store.for_run(run_id):
            if approval.status is ApprovalStatus.PENDING:
                await self._decide_row(approval, ApprovalStatus.EXPIRED, None, reason)

    async def resume_if_decided(self, run_id: str) -> bool:
        """Resume the run when none of its approvals is pending any more."""
        if any(a.status is ApprovalStatus.PENDING for a in await self.store.for_run(run_id)):
            return False
        return self.engine.resume(run_id)

    async def recover(self) -> None:
        """At start: WAITING chat runs whose approvals were all decided (before a restart) go on.
        Read from the store, not the engine's memory: on PostgreSQL any process may have
        suspended them (a resume there is a compare-and-set, so several servers may all ask)."""
        from polaris_jupyter.chat.service import PROCESS_MESSAGE_TASK_ID

        rows = await self.engine.store.query(
            "SELECT DISTINCT r.id AS id FROM runs r JOIN approvals a ON a.run_id = r.id WHERE r.status = ? AND r.task_id = ?",
            (RunStatus.WAITING.value, PROCESS_MESSAGE_TASK_ID),
        )
        for row in rows:
            await self.resume_if_decided(row["id"])

    # -- internals -------------------------------------------------------------------------------
    async def _run_ended(self, run_id: str) -> bool:
        try:
            return (await self.engine.get_run(run_id)).status.is_final
        except RunNotFound:
            return True

    async def _decide_row(
        self, approval: Approval, status: ApprovalStatus, scope: ApprovalScope | None, reason: str | None
    ) -> Approval:
        """Store the decision, show it on the tool card, and tell every view (event)."""
        decided = replace(approval, status=status, scope=scope, reason=reason, decided_at=self.engine.clock.now())
        self.store.put(decided)
        if decided.message_id is not None:
            await self._show_on_card(decided)
        self.engine.emit(
            "approval.decided",
            {"approval": decided.to_json(), "messageId": decided.message_id, "toolCallId": decided.tool_call_id},
            run_id=decided.run_id,
            conversation_id=decided.conversation_id,
        )
        return decided

    async def _show_on_card(self, approval: Approval) -> None:
        """The card of the call shows the decision: through the running turn when one owns the
        message (it would overwrite the row otherwise), else in the stored row."""
        assert approval.message_id is not None
        turn = self.chat.open_messages.turn(approval.message_id)
        if turn is not None:
            turn.update_card(approval.tool_call_id, approval=approval.card())
            return
        message = await self.chat.store.get_message(approval.message_id)
        if message is None:
            return
        for card in message.tool_calls:
            if card.get("id") == approval.tool_call_id:
                card["approval"] = approval.card()
        self.chat.store.put_message(message)
