"""``PolarisAPI``: the one service layer every client goes through.

REST handlers (generated from the route table), the in-kernel backend and anything else call
:meth:`PolarisAPI.dispatch` with an operation id and its wire-form parameters; ``dispatch``
validates them against the route's schemas, calls the method of the same name and returns the
answer as wire JSON (camelCase). Errors are the one family of ``polaris_jupyter.errors``, so
local and remote callers get the same message and status for the same mistake.

Example::

    api = PolarisAPI(runtime)
    answer = await api.dispatch("trigger", path={"taskId": "cleanup"}, body={"payload": {}})
    answer.status, answer.body   # 200, {"id": "run_…", "isCached": False}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from polaris_jupyter._version import __version__
from polaris_jupyter.api.routes import ROUTES, Route, route_for, snake_case
from polaris_jupyter.api.validate import check_body, check_query
from polaris_jupyter.errors import InvalidInput, NotFound, Unavailable
from polaris_jupyter.jobs import (
    RunFilter,
    TaskNotFound,
    list_runs,
    options_from_json,
    parse_statuses,
    task_metrics,
)

if TYPE_CHECKING:
    from polaris_jupyter.chat.service import ChatService
    from polaris_jupyter.runtime import PolarisRuntime
    from polaris_jupyter.tasks.generate import GenerationService

__all__ = ["Answer", "PolarisAPI"]

JSON = Any


@dataclass(frozen=True)
class Answer:
    """What an operation answered: the HTTP status of its route and the JSON body (None for 204)."""

    status: int
    body: JSON


class PolarisAPI:
    """Every operation of the route table as an async method over one runtime."""

    def __init__(self, runtime: PolarisRuntime) -> None:
        self.runtime = runtime

    # -- dispatch ------------------------------------------------------------------------------
    async def dispatch(
        self,
        op: str,
        *,
        path: Mapping[str, str] | None = None,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Answer:
        """Validate the parameters of ``op`` against its route and run it."""
        route = route_for(op)
        if route.websocket:
            raise InvalidInput(f"{op} is a WebSocket endpoint, not an operation")
        if not self.runtime.started:
            raise Unavailable("the Polaris engine is starting; try again in a moment", retry_after_s=1)
        kwargs: dict[str, Any] = {}
        for name in route.path_params:
            value = (path or {}).get(name)
            if not isinstance(value, str) or not value:
                raise InvalidInput(f"{name} must be a non-empty string")
            kwargs[snake_case(name)] = value
        kwargs.update(check_query(route, query or {}))
        if route.body is not None:
            kwargs["body"] = check_body(route, body)
        result = await getattr(self, op)(**kwargs)
        return Answer(route.status, None if route.status == 204 else result)

    @property
    def routes(self) -> tuple[Route, ...]:
        return ROUTES

    # -- parts ----------------------------------------------------------------------------------
    @property
    def chat(self) -> ChatService:
        return self.runtime.chat

    @property
    def generation(self) -> GenerationService:
        return self.runtime.generation

    # -- service --------------------------------------------------------------------------------
    async def health(self) -> JSON:
        engine = self.runtime.engine
        return {
            "ok": not self.runtime.task_module_errors,
            "version": __version__,
            "activeRuns": len(engine.active_runs()),
            "lastEventSeq": engine.bus.last_seq,
            "storeBytesWritten": engine.store.bytes_written,
            "parts": self.runtime.part_names,
            "taskModuleErrors": [e.to_json() for e in self.runtime.task_module_errors],
        }

    async def openapi(self) -> JSON:
        from polaris_jupyter.api.openapi import openapi_document

        return openapi_document()

    # -- tasks and runs ---------------------------------------------------------------------------
    async def list_tasks(self) -> JSON:
        engine = self.runtime.engine
        return {"tasks": [t.to_json(engine.default_retry) for t in sorted(engine.registry.all(), key=lambda t: t.id)]}

    async def trigger(self, task_id: str, body: dict[str, Any]) -> JSON:
        engine = self.runtime.engine
        options = options_from_json(body.get("options"), engine.clock.now())
        await engine.registry.check_payload(task_id, body.get("payload"))
        handle = await engine.trigger(task_id, body.get("payload"), options)
        return {"id": handle.id, "isCached": handle.is_cached}

    async def batch_trigger(self, task_id: str, body: dict[str, Any]) -> JSON:
        engine = self.runtime.engine
        if engine.registry.get(task_id) is None:  # 404 before reading the items
            raise TaskNotFound(f"no task with id {task_id!r}")
        now = engine.clock.now()
        parsed = []
        for index, item in enumerate(body["items"]):
            try:
                parsed.append((item.get("payload"), options_from_json(item.get("options"), now)))
                await engine.registry.check_payload(task_id, item.get("payload"))
            except InvalidInput as exc:
                raise InvalidInput(f"items[{index}]: {exc}") from exc
        batch = await engine.batch_trigger(task_id, parsed)
        return {"batchId": batch.batch_id, "runs": [{"id": h.id, "isCached": h.is_cached} for h in batch.runs]}

    async def list_runs(
        self,
        limit: int,
        status: str | None = None,
        task: str | None = None,
        tag: str | None = None,
        conversation: str | None = None,
        batch: str | None = None,
        cursor: str | None = None,
    ) -> JSON:
        flt = RunFilter(statuses=parse_statuses(status), task_id=task, tag=tag, conversation_id=conversation, batch_id=batch)
        page = await list_runs(self.runtime.engine.store, flt, cursor, limit)
        return {"data": [r.to_json() for r in page.data], "nextCursor": page.next_cursor}

    async def get_run(self, run_id: str) -> JSON:
        engine = self.runtime.engine
        run = await engine.get_run(run_id)
        body: dict[str, Any] = run.to_json()
        body["attempts"] = [a.to_json() for a in await engine.store.attempts(run_id)]
        body["logs"] = await engine.store.logs(run_id)
        return body

    async def cancel_run(self, run_id: str) -> JSON:
        return (await self.runtime.engine.cancel(run_id)).to_json()

    async def replay_run(self, run_id: str, body: dict[str, Any]) -> JSON:
        handle = await self.runtime.engine.replay(run_id, resume=bool(body.get("resume", False)))
        return {"id": handle.id}

    async def run_events(self, run_id: str, since: int, limit: int) -> JSON:
        engine = self.runtime.engine
        await engine.get_run(run_id)  # 404 for unknown ids
        events = await engine.store.run_events(run_id, since, limit)
        return {"events": [e.to_json() for e in events], "lastSeq": events[-1].run_seq if events else since}

    async def revert_run(self, run_id: str, body: dict[str, Any]) -> JSON:
        return {"reverted": await self.chat.revert_run(run_id, force=bool(body.get("force", False)))}

    async def run_output(self, run_id: str, output_format: str) -> JSON:
        from polaris_jupyter.tasks.notebook_outputs import read_run_output

        return await read_run_output(self.runtime.engine, self.runtime.root_dir, run_id, output_format)

    async def run_edits(self, run_id: str) -> JSON:
        await self.runtime.engine.get_run(run_id)
        return {"edits": await self.runtime.journal.edits_for_run(run_id)}

    async def metrics(self, hours: int, task: str | None = None) -> JSON:
        engine = self.runtime.engine
        since = engine.clock.now() - hours * 3600 if hours else None
        return await task_metrics(engine.store, task, since)

    async def list_schedules(self) -> JSON:
        return {"data": [s.to_json() for s in self.runtime.engine.schedules.list()]}

    async def create_schedule(self, body: dict[str, Any]) -> JSON:
        await self.runtime.engine.registry.check_payload(body["task"], body.get("payload"))
        schedule = await self.runtime.engine.schedules.create(
            body["task"], body["cron"], body.get("timezone", "UTC"), payload=body.get("payload"),
            options=body.get("options"), schedule_id=body.get("externalId"),
        )
        return schedule.to_json()

    async def delete_schedule(self, schedule_id: str) -> None:
        schedules = self.runtime.engine.schedules
        if schedules.get(schedule_id) is None:
            raise NotFound(f"no schedule with id {schedule_id!r}")
        await schedules.delete(schedule_id)

    async def kernel_tasks(self) -> JSON:
        workers = self.runtime.kernel_workers
        return workers.to_json() if workers is not None else {"kernels": [], "waiting": []}

    # -- chat -----------------------------------------------------------------------------------
    async def list_conversations(self) -> JSON:
        return {"data": [c.to_json() for c in await self.chat.store.list_conversations()]}

    async def create_conversation(self, body: dict[str, Any]) -> JSON:
        return (await self.chat.create_conversation(body.get("title"))).to_json()

    async def get_conversation(self, conversation_id: str) -> JSON:
        return (await self.chat.conversation(conversation_id)).to_json()

    async def update_conversation(self, conversation_id: str, body: dict[str, Any]) -> JSON:
        conv = await self.chat.conversation(conversation_id)
        if "title" in body:
            conv = await self.chat.rename(conversation_id, body["title"])
        if "provider" in body or "model" in body:
            provider = body.get("provider", conv.provider)
            model = body.get("model", None if "provider" in body else conv.model)  # a new provider: its own default
            conv = await self.chat.set_model(conversation_id, provider, model)
        if "permissionMode" in body:
            conv = await self.chat.set_permission_mode(conversation_id, body["permissionMode"])
        return conv.to_json()

    async def delete_conversation(self, conversation_id: str) -> None:
        await self.chat.delete(conversation_id)

    async def list_messages(self, conversation_id: str) -> JSON:
        await self.chat.conversation(conversation_id)
        return {"data": await self.chat.messages_json(conversation_id)}

    async def post_message(self, conversation_id: str, body: dict[str, Any]) -> JSON:
        message, run_id = await self.chat.post_message(
            conversation_id, body["content"], body.get("context"), body.get("intent")
        )
        return {"messageId": message.id, "runId": run_id}

    async def cancel_message(self, message_id: str) -> JSON:
        return (await self.chat.cancel_message(message_id)).to_json()

    async def retry_message(self, message_id: str) -> JSON:
        message, run_id = await self.chat.retry_message(message_id)
        return {"messageId": message.id, "runId": run_id}

    async def get_config(self) -> JSON:
        return await self.runtime.models.snapshot()

    async def set_model(self, body: dict[str, Any]) -> JSON:
        await self.runtime.models.set_model(body.get("provider"), body.get("model"))
        return await self.runtime.models.snapshot()

    # -- steering the model (issue 14): thin calls into agent.models and chat.rules ---------------
    async def list_models(self, refresh: bool = False) -> JSON:
        return await self.runtime.models.list_models(refresh=refresh)

    async def list_keys(self) -> JSON:
        return await self.runtime.models.keys_view()

    async def put_key(self, provider: str, body: dict[str, Any]) -> JSON:
        from polaris_jupyter.agent.keys import UNSET

        fields = {"api_key": body.get("apiKey", UNSET), "base_url": body.get("baseUrl", UNSET)}
        return await self.runtime.models.put_key(provider, **fields)

    async def delete_key(self, provider: str) -> JSON:
        return await self.runtime.models.delete_key(provider)

    async def get_rules(self) -> JSON:
        from polaris_jupyter.chat.rules import load_rules

        return (await load_rules(self.runtime.root_dir, self.runtime.config.rules_max_chars)).to_json()

    # -- notebooks in the chat (issue 13): kernel variables, proposed cell edits -------------------
    async def kernel_variables(self, kernel_id: str, body: dict[str, Any]) -> JSON:
        from polaris_jupyter.tools.variables import variables_for_api

        return await variables_for_api(self.runtime.notebook_kernels, root=self.runtime.root_dir,
                                       kernel_id=kernel_id, names=body.get("names"))

    async def notebook_variables(self, body: dict[str, Any]) -> JSON:
        from polaris_jupyter.tools.variables import variables_for_api

        return await variables_for_api(self.runtime.notebook_kernels, root=self.runtime.root_dir,
                                       path=body["path"], names=body.get("names"))

    async def run_proposals(self, run_id: str) -> JSON:
        await self.runtime.engine.get_run(run_id)  # 404 for unknown ids
        return {"proposals": [p.to_json() for p in await self.runtime.proposals.for_run(run_id)]}

    async def apply_proposal(self, proposal_id: str) -> JSON:
        from polaris_jupyter.tools.notebook_proposals import announce, apply_proposal

        runtime = self.runtime
        proposal = await apply_proposal(runtime.proposals, proposal_id, root=runtime.root_dir, journal=runtime.journal)
        await announce(runtime.engine, proposal)
        return proposal.to_json()

    async def discard_proposal(self, proposal_id: str) -> JSON:
        from polaris_jupyter.tools.notebook_proposals import announce, discard_proposal

        proposal = await discard_proposal(self.runtime.proposals, proposal_id)
        await announce(self.runtime.engine, proposal)
        return proposal.to_json()

    # -- inline completions (issue 15): thin calls into agent.completions ------------------------
    async def complete(self, body: dict[str, Any]) -> Any:
        """Start a completion; the answer is its :class:`CompletionHandle` (the stream route's
        handler writes ``handle.events()`` as NDJSON)."""
        from polaris_jupyter.agent.completions import CompletionRequest

        return self.runtime.completions.complete(CompletionRequest.from_wire(body))

    async def completion_feedback(self, completion_id: str, body: dict[str, Any]) -> JSON:
        return self.runtime.completions.feedback(completion_id, body["event"])

    async def completion_metrics(self) -> JSON:
        return self.runtime.completions.metrics()

    # -- approvals (issue 14): thin calls into chat.approvals ---------------------------------------
    async def list_approvals(self, status: str | None = None) -> JSON:
        return {"data": [a.to_json() for a in await self.chat.approvals.list(status)]}

    async def decide_approval(self, approval_id: str, body: dict[str, Any]) -> JSON:
        return (await self.chat.approvals.decide(approval_id, body["decision"], body.get("scope", "once"))).to_json()

    # -- tools and MCP servers (issue 14 item 5): thin calls into tools/mcp.py ---------------------
    async def list_mcp_servers(self) -> JSON:
        return self.runtime.mcp.to_json()

    async def reload_mcp(self) -> JSON:
        return await self.runtime.mcp.reload()

    async def mention_files(self, query: str = "", limit: int = 20) -> JSON:
        from polaris_jupyter.tools.mentions import mention_files

        return await mention_files(self.runtime.root_dir, query, limit)

    async def list_tools(self) -> JSON:
        from polaris_jupyter.tools import load_all
        from polaris_jupyter.tools.mcp import tools_json

        return {"tools": tools_json(self.runtime.mcp.registry_with(load_all()))}

    # -- generation -------------------------------------------------------------------------------
    async def list_project_kinds(self) -> JSON:
        from polaris_jupyter.tasks.project_kinds import project_kinds

        return {"kinds": [kind.to_json() for kind in project_kinds()]}

    async def get_project_kind(self, kind_id: str) -> JSON:
        from polaris_jupyter.tasks.project_kinds import PlanError, get_project_kind

        try:
            return get_project_kind(kind_id).to_json(full=True)
        except PlanError as exc:
            raise NotFound(str(exc)) from None

    async def generate(self, body: dict[str, Any]) -> JSON:
        run_id = await self.generation.start(
            body["description"], body["kind"], body["path"], body.get("overwrite", False), body.get("plan")
        )
        return {"runId": run_id}
