"""``%polaris mode``, ``%polaris approvals``, ``%polaris approve`` / ``deny``: steering from a cell.

::

    %polaris mode                 the current conversation's permission mode
    %polaris mode auto-edit       edits apply, commands ask (ask, auto-edit, auto, plan)
    %polaris approvals            tool calls waiting for your approval, with their diffs
    %polaris approve ID [--run]   run it (--run: and every later call of that answer)
    %polaris deny ID              do not run it; the model is told you denied it

An answer streaming into a cell (``%polaris ask``) stops at a held call, showing the command
that approves it, so the kernel is free; ``%polaris approve`` / ``deny`` then streams the rest
of that answer into its own cell (the chat panel and the sidebar can decide too).
Everything goes through the same operations as REST (``update_conversation``,
``list_approvals``, ``decide_approval``), so a refusal reads the same: an unknown id, an
approval already decided, a run that ended.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from polaris_jupyter.errors import PolarisError
from polaris_jupyter.kernel.magics import _parser, _split

if TYPE_CHECKING:
    from polaris_jupyter.kernel.client import Polaris

__all__ = ["APPROVAL_SUBCOMMANDS", "APPROVAL_USAGE", "ApprovalsTable", "run_subcommand"]

APPROVAL_SUBCOMMANDS = ("mode", "approvals", "approve", "deny")
APPROVAL_USAGE = """\
%polaris mode [ask|auto-edit|auto|plan]
                               show or set what this conversation's tool calls may do without asking
%polaris approvals [--all]     tool calls waiting for your approval (--all: decided ones too)
%polaris approve ID [--run]    approve a held tool call (--run: every later call of that answer too)
%polaris deny ID               deny it: it is not run and the model is told"""
MODES = ("ask", "auto-edit", "auto", "plan")

_PARSERS = {
    "mode": _parser("mode", (("mode",), {"nargs": "?"})),
    "approvals": _parser("approvals", (("--all",), {"action": "store_true"})),
    "approve": _parser("approve", (("approval_id",), {}), (("--run",), {"action": "store_true"})),
    "deny": _parser("deny", (("approval_id",), {})),
}


class ApprovalsTable:
    """Approvals as a table (HTML in a notebook, text elsewhere), diffs folded."""

    def __init__(self, approvals: list[dict[str, Any]]) -> None:
        self.approvals = approvals

    def _target(self, a: dict[str, Any]) -> str:
        args = a.get("arguments") or {}
        return str(args.get("path") or args.get("command") or "")[:80]

    def __repr__(self) -> str:
        if not self.approvals:
            return "No tool call is waiting for approval."
        lines = [f"{a['id']}  {a['status']:<8}  {a['toolName']}  {self._target(a)}" for a in self.approvals]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        if not self.approvals:
            return "<p>No tool call is waiting for approval.</p>"
        rows = []
        for a in self.approvals:
            diff = f"<details><summary>diff</summary><pre>{escape(a['diff'])}</pre></details>" if a.get("diff") else ""
            rows.append(
                f"<tr><td><code>{escape(a['id'])}</code></td><td>{escape(a['status'])}</td>"
                f"<td>{escape(a['toolName'])}</td><td>{escape(self._target(a))}{diff}</td></tr>"
            )
        head = "<tr><th>id</th><th>status</th><th>tool</th><th>what</th></tr>"
        return f"<table class='pj-approvals'>{head}{''.join(rows)}</table>"


def run_subcommand(client_factory: Any, name: str, rest: str) -> Any:
    """Run one of :data:`APPROVAL_SUBCOMMANDS` (``client_factory()`` gives the client)."""
    args = _PARSERS[name].parse_args(_split(rest))
    client: Polaris = client_factory()
    try:
        if name == "mode":
            return _mode(client, args.mode)
        if name == "approvals":
            query = {} if args.all else {"status": "pending"}
            return ApprovalsTable(client.call(client.backend.call("list_approvals", query=query))["data"])
        return _decide(client, name, args.approval_id, scope="run" if getattr(args, "run", False) else "once")
    except PolarisError as exc:  # an unknown id, already decided, a bad mode: one line, no traceback
        raise UsageError(f"%polaris {name}: {exc}") from None


def _decide(client: Polaris, name: str, approval_id: str, *, scope: str) -> None:
    """Decide, then stream the rest of the answer into this cell (until it is final or held again)."""
    from IPython import get_ipython

    from polaris_jupyter.kernel.magics import _stream

    decision = "approve" if name == "approve" else "deny"
    decided: dict[str, Any] = {}

    def post() -> dict[str, Any]:
        body = {"decision": decision, "scope": scope}
        decided.update(client.call(client.backend.call("decide_approval", path={"approvalId": approval_id}, body=body)))
        return {"messageId": decided.get("messageId"), "runId": decided.get("runId")}

    verb = "Approved" if decision == "approve" else "Denied"
    extra = " and every later call of that answer" if scope == "run" and decision == "approve" else ""
    shell, conversation_id = get_ipython(), None
    if shell is not None:
        probe = client.call(client.backend.call("list_approvals", query={"status": "pending"}))["data"]
        conversation_id = next((a.get("conversationId") for a in probe if a["id"] == approval_id), None)
    if shell is None or not conversation_id:  # not in IPython, or not pending: decide and say so
        post()
        print(f"{verb} {decided['toolName']} {approval_id}{extra}; run {decided['runId']} goes on")
        return
    print(f"{verb} {approval_id}{extra}; the answer goes on:")
    _stream(shell, client, post, conversation_id, resume=True)


def _mode(client: Polaris, mode: str | None) -> None:
    conversation_id = client.current_conversation()
    if mode is None:
        conversation = client.call(client.backend.conversation(conversation_id))
        current = conversation.get("permissionMode") or "the server's default"
        print(f"Permission mode of this conversation: {current} (one of {', '.join(MODES)})")
        return
    conversation = client.call(client.backend.call(
        "update_conversation", path={"conversationId": conversation_id}, body={"permissionMode": mode}))
    print(f"Permission mode of this conversation: {conversation['permissionMode']}")
