"""``generate-project``: a project generated step by step as one durable, resumable run.

The plan is a :class:`~polaris_jupyter.tasks.project_kinds.ProjectKind`. Every step whose
dependencies are finished runs at once (one asyncio task each, owned by the attempt); each
finished step is a checkpoint on the run, so a retried attempt, a replay with ``resume`` or a
restart after a crash skips it. When a step fails, no new step starts, the steps already
running finish (their work is checkpointed, not thrown away), and the attempt fails with a
message naming the step; the engine's retry policy (``PolarisConfig.default_retry``) decides
whether another attempt follows. A cancel cancels every running step at once.

From a notebook::

    run_id = await start_generation(runtime, "A todo list with due dates", path="todo")
    async for event in follow_generation(runtime, run_id):
        print(event.type, event.data)
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from polaris_jupyter.jobs import (
    AbortTaskError,
    Conflict,
    Event,
    EventFilter,
    InvalidInput,
    QueueDef,
    RunContext,
    TaskDef,
    TriggerOptions,
)
from polaris_jupyter.tasks.generate_steps import FileInfo, StepOutcome, run_model_step
from polaris_jupyter.tasks.generate_target import Target, ensure_target, resolve_target
from polaris_jupyter.tasks.generate_verify import run_verify_step
from polaris_jupyter.tasks.project_kinds import (
    ProjectKind,
    Step,
    StepAction,
    get_project_kind,
    is_builtin,
)

if TYPE_CHECKING:
    from polaris_jupyter.agent import ProviderChain
    from polaris_jupyter.runtime import PolarisRuntime
    from polaris_jupyter.tools.base import EditRecorder

__all__ = [
    "GENERATE_TASK_ID",
    "GenerationService",
    "StepFailed",
    "follow_generation",
    "install",
    "resume_generation",
    "start_generation",
]

GENERATE_TASK_ID = "generate-project"
MAX_DESCRIPTION_CHARS = 20_000
VALIDATED_KEY = "input:validated"
#: One generation at a time per target folder (runs carry the folder as concurrency key).
GENERATE_QUEUE = QueueDef(GENERATE_TASK_ID, concurrency_limit=1)


class StepFailed(Exception):
    """A step of the plan failed; the message names it."""

    def __init__(self, step: Step, cause: BaseException) -> None:
        detail = str(cause) or type(cause).__name__
        super().__init__(f"step {step.id!r} ({step.title}) failed: {type(cause).__name__}: {detail}")
        self.step_id = step.id


@dataclass(frozen=True)
class GenerationRequest:
    description: str
    kind: ProjectKind
    path: str
    overwrite: bool

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {"description": self.description, "kind": self.kind.id, "path": self.path,
                                "overwrite": self.overwrite}
        if not is_builtin(self.kind.id) or get_project_kind(self.kind.id) != self.kind:
            data["plan"] = self.kind.to_json(full=True)  # a custom kind travels with its runs
        return data


def parse_request(description: Any, kind: Any, path: Any, overwrite: Any, plan: Any = None) -> GenerationRequest:
    """Check what a user (REST body, payload, notebook call) asked for; InvalidInput says what is wrong."""
    if not isinstance(description, str) or not description.strip():
        raise InvalidInput("description must be a non-empty string saying what to build")
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise InvalidInput(f"description is {len(description)} characters; the limit is {MAX_DESCRIPTION_CHARS}")
    if not isinstance(overwrite, bool):
        raise InvalidInput("overwrite must be true or false")
    if not isinstance(path, str) or not path.strip():
        raise InvalidInput("path must be a non-empty folder name inside the workspace, e.g. \"app\"")
    if isinstance(kind, ProjectKind):
        resolved = kind
    elif plan is not None:
        resolved = ProjectKind.from_json(plan)
        if resolved.id != kind:
            raise InvalidInput(f"the plan is for kind {resolved.id!r}, but the payload names {kind!r}")
    else:
        resolved = get_project_kind(kind)
    return GenerationRequest(description.strip(), resolved, path.strip(), overwrite)


def parse_payload(payload: Any) -> GenerationRequest:
    if not isinstance(payload, dict):
        raise InvalidInput("payload must be {description, kind, path, overwrite}")
    return parse_request(payload.get("description"), payload.get("kind", "react-vite"), payload.get("path"),
                         payload.get("overwrite", False), payload.get("plan"))


class GenerationService:
    """Starts generations and runs the ``generate-project`` task for one runtime."""

    def __init__(self, runtime: PolarisRuntime) -> None:
        self.runtime = runtime
        self.engine = runtime.engine

    async def chain(self) -> ProviderChain:
        """The runtime's provider chain (one model config for chat and generation)."""
        return await self.runtime.models.chain()

    def journal(self) -> EditRecorder:
        """Edits are recorded in the runtime's journal, so a generation's files can be reverted."""
        return self.runtime.journal

    async def start(self, description: Any, kind: Any = "react-vite", path: Any = "app",
                    overwrite: Any = False, plan: Any = None) -> str:
        """Validate, apply the folder rules and trigger the run; returns its id at once.

        ``plan`` (a kind's JSON form) lets a client that is not in this process, such as a
        kernel talking to the server, run a kind it defined itself.
        """
        request = parse_request(description, kind, path, overwrite, plan)
        target = await asyncio.to_thread(resolve_target, self.runtime.root_dir, request.path,
                                         overwrite=request.overwrite)
        for run in self.engine.active_runs():
            if run.task_id == GENERATE_TASK_ID and isinstance(run.payload, dict) and run.payload.get("path") == target.rel:
                raise Conflict(f"generation {run.id} is already writing into {target.rel!r}; wait for it or cancel it")
        request = GenerationRequest(request.description, request.kind, target.rel, request.overwrite)
        total = len(request.kind.steps)
        handle = await self.engine.trigger(
            GENERATE_TASK_ID,
            request.payload(),
            TriggerOptions(
                tags=["generation", f"kind:{request.kind.id}"],
                metadata={"progress": {"done": 0, "total": total, "steps": {}}},
                concurrency_key=target.rel,
            ),
        )
        return handle.id

    async def run(self, payload: Any, ctx: RunContext) -> dict[str, Any]:
        """The task function: one attempt of a generation."""
        request = parse_payload(payload)
        return await _Attempt(self, request, ctx).run()


class _Attempt:
    """State of one attempt: which steps are done, what was written, what is running."""

    def __init__(self, service: GenerationService, request: GenerationRequest, ctx: RunContext) -> None:
        self.service = service
        self.request = request
        self.kind = request.kind
        self.ctx = ctx
        self.states: dict[str, str] = {}
        self.done: set[str] = set()
        self.written: dict[str, FileInfo] = {}
        self.durations_ms: dict[str, float] = {}
        self.model_calls = 0
        self._chain: ProviderChain | None = None
        self._target: Target | None = None

    @property
    def target(self) -> Target:
        assert self._target is not None
        return self._target

    async def run(self) -> dict[str, Any]:
        ctx, kind = self.ctx, self.kind
        validated = bool(ctx.checkpoint(VALIDATED_KEY))
        try:
            self._target = await asyncio.to_thread(
                resolve_target, self.service.runtime.root_dir, self.request.path,
                overwrite=self.request.overwrite, check_empty=not validated,
            )
            created = await asyncio.to_thread(ensure_target, self.target)
        except Conflict as exc:
            raise AbortTaskError(str(exc)) from None
        journal = self.service.journal()
        if created and journal is not None:  # so reverting the run removes the folder too
            await journal.record(ctx.run_id, self.target.rel + "/", None, b"", "")
        if not validated:
            await ctx.save_checkpoint(VALIDATED_KEY, {"path": self.target.rel})
        kept = self._restore()
        if kept:
            ctx.emit("generation.info", {"message": f"Resuming: {len(kept)} of {len(kind.steps)} steps were "
                                         f"finished before ({', '.join(kept)}); they are skipped."})
        else:
            ctx.emit("generation.info", {"message": f"Generating {kind.title} in {self.target.rel}/ "
                                         f"({len(kind.steps)} steps)."})
        for step_id in kept:
            self._set_state(step_id, "skipped", self.durations_ms.get(step_id))
        self._publish()
        await self._schedule()
        files = sorted(self.target.workspace_path(p) for p in self.written)
        ctx.emit("generation.info", {"message": f"Done: {len(files)} files in {self.target.rel}/."})
        return {
            "path": self.target.rel,
            "kind": kind.id,
            "files": files,
            "steps": {s: {"state": self.states.get(s), "durationMs": round(self.durations_ms.get(s, 0.0), 1)}
                      for s in kind.order},
            "resumedSteps": kept,
            "modelCalls": self.model_calls,
        }

    def _restore(self) -> list[str]:
        """Steps finished by earlier attempts (or the run this one resumes), in plan order."""
        kept: list[str] = []
        for step_id in self.kind.order:
            saved = self.ctx.checkpoint(f"step:{step_id}")
            if not isinstance(saved, dict):
                continue
            kept.append(step_id)
            self.done.add(step_id)
            self.durations_ms[step_id] = float(saved.get("durationMs") or 0.0)
            for raw in saved.get("files") or []:
                info = FileInfo.from_json(raw)
                if info is not None:
                    self.written[info.path] = info
        return kept

    async def _schedule(self) -> None:
        """Start every step whose dependencies are done; on failure drain the running ones."""
        index = {step_id: i for i, step_id in enumerate(self.kind.order)}
        started: set[str] = set(self.done)
        running: dict[asyncio.Task[StepOutcome], Step] = {}
        failure: StepFailed | None = None
        try:
            while True:
                if failure is None:
                    for step_id in self.kind.order:
                        step = self.kind.step(step_id)
                        if step_id not in started and all(d in self.done for d in step.depends_on):
                            started.add(step_id)
                            task = asyncio.create_task(self._run_step(step), name=f"generate:{step_id}")
                            running[task] = step
                if not running:
                    break
                finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(finished, key=lambda t: index[running[t].id]):
                    step = running.pop(task)
                    exc = task.exception() if not task.cancelled() else asyncio.CancelledError()
                    if exc is None:
                        self.done.add(step.id)
                    elif failure is None:
                        failure = StepFailed(step, exc)
                        failure.__cause__ = exc
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
        if failure is not None:
            if isinstance(failure.__cause__, (AbortTaskError, InvalidInput)):
                raise AbortTaskError(str(failure)) from failure.__cause__  # retrying cannot help
            raise failure

    async def _run_step(self, step: Step) -> StepOutcome:
        ctx = self.ctx
        self._set_state(step.id, "started")
        self._publish(progress=False)
        t0 = time.perf_counter()
        try:
            chain = await self._get_chain() if step.asks_model else None
            t0 = time.perf_counter()  # the first step builds the shared chain: not the step's time
            run_model = functools.partial(self._model_step, step, chain) if chain is not None else None
            if step.action is StepAction.VERIFY:
                outcome = await run_verify_step(step, self.kind, self.target.path, run_model=run_model, emit=ctx.emit)
            elif run_model is not None:
                outcome = await run_model("")
            else:
                await asyncio.to_thread(ensure_target, self.target)
                outcome = StepOutcome()
            outcome.duration_ms = (time.perf_counter() - t0) * 1000.0
            await ctx.save_checkpoint(
                f"step:{step.id}",
                {"files": [f.to_json() for f in outcome.files], "durationMs": round(outcome.duration_ms, 1),
                 "modelCalls": outcome.model_calls},
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            message = str(StepFailed(step, exc))
            self._set_state(step.id, "failed", (time.perf_counter() - t0) * 1000.0, error=message)
            ctx.emit("generation.error", {"message": message, "stepId": step.id, "attempt": ctx.attempt})
            ctx.logger.error(message)
            self._publish(progress=False)
            raise
        self.model_calls += outcome.model_calls
        self.durations_ms[step.id] = outcome.duration_ms
        self.done.add(step.id)
        self._set_state(step.id, "finished", outcome.duration_ms, files=len(outcome.files))
        self._publish()
        return outcome

    async def _model_step(self, step: Step, chain: ProviderChain, notes: str) -> StepOutcome:
        return await run_model_step(
            chain=chain, kind=self.kind, step=step, description=self.request.description, target=self.target,
            written=self.written, run_id=self.ctx.run_id, journal=self.service.journal(),
            on_file=lambda info, preview: self._file_written(step, info, preview), notes=notes,
        )

    async def _get_chain(self) -> ProviderChain:
        if self._chain is None:
            from polaris_jupyter.agent import NoProviderError

            try:
                self._chain = await self.service.chain()
            except NoProviderError as exc:
                raise AbortTaskError(str(exc)) from None
        return self._chain

    def _file_written(self, step: Step, info: FileInfo, preview: str) -> None:
        self.ctx.emit("generation.file", {"path": self.target.workspace_path(info.path), "preview": preview,
                                          "stepId": step.id, "lines": info.lines, "bytes": info.bytes})

    def _set_state(self, step_id: str, state: str, duration_ms: float | None = None, **extra: Any) -> None:
        self.states[step_id] = state
        data: dict[str, Any] = {"stepId": step_id, "state": state, "title": self.kind.step(step_id).title}
        if duration_ms is not None:
            data["durationMs"] = round(duration_ms, 1)
        data.update(extra)
        self.ctx.emit("generation.step", data)

    def _publish(self, *, progress: bool = True) -> None:
        """Step states into the run's metadata; a ``generation.progress`` event when ``done`` moved."""
        done, total = len(self.done), len(self.kind.steps)
        if progress:
            self.ctx.emit("generation.progress", {"done": done, "total": total})
        self.ctx.metadata.set("progress", {"done": done, "total": total, "steps": dict(self.states)})


# -- the notebook / kernel API ------------------------------------------------------------------

def _service(runtime: PolarisRuntime) -> GenerationService:
    return runtime.generation


async def start_generation(runtime: PolarisRuntime, description: str, kind: str | ProjectKind = "react-vite",
                           path: str = "app", overwrite: bool = False) -> str:
    """Start generating a project into ``path`` (a folder inside the workspace); returns the run id.

    Raises :class:`InvalidInput` for a bad description, an unknown kind or a folder outside the
    workspace, and :class:`Conflict` when the folder is not empty (unless ``overwrite``) or
    another generation is writing into it. ``kind`` may be a registered id or a ProjectKind.
    """
    return await _service(runtime).start(description, kind, path, overwrite)


async def resume_generation(runtime: PolarisRuntime, run_id: str) -> str:
    """A new run of a failed or cancelled generation that skips the steps it finished."""
    handle = await runtime.engine.replay(run_id, resume=True)
    return handle.id


async def follow_generation(runtime: PolarisRuntime, run_id: str, since: int = 0) -> AsyncIterator[Event]:
    """The run's events (``generation.*``, ``run.status``...) from ``since`` until the run is final."""
    from polaris_jupyter.jobs import FINAL_STATUSES, RunStatus

    engine = runtime.engine
    run = await engine.get_run(run_id)
    stream = engine.bus.subscribe(EventFilter(run_id=run_id), since=since)
    try:
        if run.status.is_final:
            await engine.store.flush()
            for event in await engine.store.run_events(run_id, 0):
                if event.seq > since:
                    yield event
            return
        async for event in stream:
            yield event
            if event.type == "run.status" and RunStatus(event.data.get("status")) in FINAL_STATUSES:
                return
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


def install(runtime: PolarisRuntime) -> GenerationService:
    """The generation service of a runtime, with ``generate-project`` registered (before start)."""
    service = GenerationService(runtime)
    runtime.engine.register(
        TaskDef(
            id=GENERATE_TASK_ID,
            fn=service.run,
            queue=GENERATE_QUEUE,
            max_duration_s=2 * 3600,
            description="Generate a project from a description, step by step, resuming after failures.",
        )
    )
    return service
