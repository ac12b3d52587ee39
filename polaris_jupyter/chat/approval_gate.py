"""How a chat turn waits for approvals without holding a worker: the smallest sound mechanism.

1. The tool loop asks the turn's :class:`ApprovalGate` about each step's calls
   (``agent/gate.py``). A call the conversation's permission mode lets through runs; one that
   needs consent gets an approval row (pending, with the diff an edit would apply, computed by
   the tool itself in a dry run, ``tools/previews.py``) and is *held*.
2. A held step stops the loop with ``ToolCallsHeld`` before anything of that step ran.
   :meth:`ApprovalGate.hold` shows the step's cards as waiting, emits ``approval.requested``,
   saves a :class:`TurnCheckpoint` (the messages the loop added, its counters, the held
   step's calls, the cards) and raises the engine's ``Suspend``: the attempt ends in WAITING
   and its worker slot is released. One commit holds the rows, the events and the checkpoint.
3. A decision (``ApprovalService.decide``) stores the answer and, when nothing of the run is
   pending, calls ``engine.resume``. The run continues as the same attempt; the turn finds the
   checkpoint, restores the message as it was (no reset) and calls the loop with
   ``resume=``: the held step is re-planned from its stored calls, the gate now answers from
   the rows (approved → run, denied or expired → the model gets "the user denied this" as the
   call's result), and the loop goes on. The model is not asked again for that step.
4. The timeout is the suspension's: the engine continues the run at the earliest deadline and
   the gate expires what is still pending there (a timeout denies).
5. Restarts: the WAITING run and the rows are on disk. ``ApprovalService.recover`` resumes runs
   whose approvals were decided while the server was down; a pending one simply keeps waiting.
   Nothing is applied twice: once a turn has suspended, its checkpoint is saved again right
   before approved calls run (naming them) and after their results are in. A continuation
   that finds calls named as running without their results does not run them again; the
   model is told they may have been applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from polaris_jupyter.agent.gate import LoopState, ToolCallsHeld, Verdict
from polaris_jupyter.chat.approvals import (
    DENIED_TEXT,
    EXPIRED_TEXT,
    Approval,
    ApprovalService,
    ApprovalStatus,
)
from polaris_jupyter.jobs import RunContext, Suspend
from polaris_jupyter.tools.permissions import PermissionMode, needs_approval, tool_access
from polaris_jupyter.tools.previews import preview_call

if TYPE_CHECKING:
    from polaris_jupyter.agent.tool_runner import PlannedCall
    from polaris_jupyter.chat.turn import ChatTurn
    from polaris_jupyter.tools.base import ToolContext

__all__ = ["INTERRUPTED_TEXT", "TURN_CHECKPOINT", "ApprovalGate", "TurnCheckpoint"]

#: The run checkpoint a held chat turn continues from.
TURN_CHECKPOINT = "chat.turn"
INTERRUPTED_TEXT = (
    "the server stopped while this call was running, so it may or may not have been applied; "
    "check the result (e.g. read the file) before trying again."
)


@dataclass
class TurnCheckpoint:
    """A held (or resumed) turn, as saved in the run: the loop's state, approved calls that were
    under way when it was saved, and the message's tool cards."""

    loop: LoopState
    running: list[str] = field(default_factory=list)
    cards: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, ctx: RunContext) -> TurnCheckpoint | None:
        data = ctx.checkpoint(TURN_CHECKPOINT)
        if not isinstance(data, dict) or not isinstance(data.get("loop"), dict):
            return None
        return cls(LoopState.from_json(data["loop"]), list(data.get("running") or []), list(data.get("cards") or []))

    async def save(self, ctx: RunContext) -> None:
        await ctx.save_checkpoint(TURN_CHECKPOINT, {"loop": self.loop.to_json(), "running": self.running,
                                                    "cards": self.cards})


def _timeout_words(seconds: float) -> str:
    return f"{seconds / 60:g} minutes" if seconds >= 120 else f"{seconds:g} seconds"


class ApprovalGate:
    """The tool gate of one chat turn (see the module docstring)."""

    def __init__(
        self, approvals: ApprovalService, turn: ChatTurn, ctx: RunContext, mode: PermissionMode, tools: ToolContext
    ) -> None:
        self.approvals = approvals
        self.turn = turn
        self.ctx = ctx
        self.mode = mode
        self.tools = tools
        #: Set once the turn has suspended (or continues from a checkpoint): it keeps checkpoints.
        self.checkpoint = turn.resumed_from
        self._interrupted = set(self.checkpoint.running) if self.checkpoint is not None else set()
        self._requested: list[Approval] = []
        self._held_rows: dict[str, Approval] = {}

    async def review(self, calls: list[PlannedCall], step: int) -> dict[str, Verdict]:
        """A decision stored for a call wins over the mode (a mode changed while the turn waited
        neither runs a denied call nor runs an interrupted one again); the mode decides the rest."""
        interrupted, self._interrupted = self._interrupted, set()  # only the step being continued
        runnable = [c for c in calls if c.tool is not None and c.problem is None]
        gated = {c.call_id for c in runnable if c.tool is not None and needs_approval(c.tool, self.mode)}
        if not gated and self.checkpoint is None:  # rows exist only for a turn that was held
            return {}
        rows = {(a.step, a.tool_call_id): a for a in await self.approvals.store.for_run(self.ctx.run_id)}
        run_wide = any(a.status is ApprovalStatus.APPROVED and a.scope is not None and a.scope.value == "run"
                       for a in rows.values())
        now = self.approvals.engine.clock.now()
        verdicts: dict[str, Verdict] = {}
        for call in runnable:
            assert call.tool is not None
            if call.call_id in interrupted:
                verdicts[call.call_id] = Verdict.refuse(INTERRUPTED_TEXT)
                continue
            row = rows.get((step, call.call_id))
            if row is None:
                if call.call_id not in gated or run_wide:
                    continue
                preview = await preview_call(call.tool, call.arguments, self.tools)
                if preview.error is not None:  # it cannot do anything: answer with why, ask no one
                    verdicts[call.call_id] = Verdict.refuse(preview.error)
                    continue
                row = self.approvals.new(
                    run_id=self.ctx.run_id, step=step, message_id=self.turn.message_id,
                    conversation_id=self.turn.conversation_id, tool_call_id=call.call_id, tool_name=call.name,
                    arguments=dict(call.arguments), diff=preview.diff or None, access=tool_access(call.tool).value,
                )
                self.approvals.store.put(row)
                self._requested.append(row)
            if row.status is ApprovalStatus.PENDING and row.expires_at is not None and row.expires_at <= now:
                words = _timeout_words(self.approvals.timeout_s)
                row = await self.approvals.expire(row, f"no answer within {words}")
            self._held_rows[call.call_id] = row
            if row.status is not ApprovalStatus.PENDING:  # the card shows the decision it runs with
                self.turn.update_card(call.call_id, approval=row.card())
            verdicts[call.call_id] = self._verdict(row)
        return verdicts

    def _verdict(self, row: Approval) -> Verdict:
        if row.status is ApprovalStatus.PENDING:
            return Verdict.hold()
        if row.status is ApprovalStatus.APPROVED:
            return Verdict.run()
        if row.status is ApprovalStatus.EXPIRED and row.reason and row.reason.startswith("no answer"):
            return Verdict.refuse(EXPIRED_TEXT.format(timeout=row.reason.removeprefix("no answer within ")))
        return Verdict.refuse(DENIED_TEXT)

    async def before_run(self, state: LoopState, calls: list[PlannedCall]) -> None:
        """A resumed turn names the approved calls about to run, so a crash cannot apply them twice."""
        approved = [c.call_id for c in calls
                    if c.problem is None and (row := self._held_rows.get(c.call_id)) is not None
                    and row.status is ApprovalStatus.APPROVED]
        if self.checkpoint is not None and approved:
            await self._save(state, running=approved)

    async def after_step(self, state: LoopState) -> None:
        self._held_rows.clear()
        if self.checkpoint is not None:
            await self._save(state, running=[])

    async def hold(self, stop: ToolCallsHeld) -> NoReturn:
        """Show the held step, announce its new approvals, save the checkpoint, suspend the run."""
        held_ids = {c.call_id for c in stop.held}
        cards = []
        for call in stop.calls:
            card: dict[str, Any] = {"id": call.call_id, "name": call.name, "arguments": dict(call.arguments),
                                    "status": "waiting"}
            row = self._held_rows.get(call.call_id)
            if row is not None and call.call_id in held_ids:
                card["approval"] = row.card()
                card["diff"] = row.diff
            cards.append(card)
        self.turn.show_cards(cards)
        by_id = {c["id"]: c for c in cards}
        for row in self._requested:
            self.ctx.emit("approval.requested", {"approval": row.to_json(), "messageId": self.turn.message_id,
                                                 "toolCall": by_id.get(row.tool_call_id)})
        self._requested = []
        await self._save(stop.state, running=[])
        deadlines = [r.expires_at for r in self._held_rows.values()
                     if r.status is ApprovalStatus.PENDING and r.expires_at is not None]
        now = self.approvals.engine.clock.now()
        names = ", ".join(sorted({c.name for c in stop.held}))
        raise Suspend(f"waiting for approval of {names}", timeout_s=max(0.0, min(deadlines) - now) if deadlines else None)

    async def _save(self, state: LoopState, *, running: list[str]) -> None:
        self.checkpoint = TurnCheckpoint(state, running, self.turn.snapshot().tool_calls)
        await self.checkpoint.save(self.ctx)
