"""The Polaris runtime: the composition root of one host process (a server or a kernel).

The server extension and the in-kernel fallback both build a :class:`PolarisRuntime`, so the
same tasks run with the same semantics and the same store format wherever they are hosted. Its
parts are built in one visible order and reached as typed attributes: ``engine`` (jobs and
store), ``chat`` (conversations and ``process-message``), ``generation`` (``generate-project``),
``kernel_workers`` (set by the server extension) and ``api`` (the service layer every client
calls).
"""

from __future__ import annotations

import importlib
import logging
import sys
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polaris_jupyter.agent.completions import CompletionService, CompletionSettings
from polaris_jupyter.agent.models import ModelService
from polaris_jupyter.api import PolarisAPI
from polaris_jupyter.chat.approvals import APPROVALS_SCHEMA
from polaris_jupyter.chat.remote import follow_remote_answers
from polaris_jupyter.chat.service import ChatService
from polaris_jupyter.chat.service import install as install_chat
from polaris_jupyter.config import PolarisConfig
from polaris_jupyter.jobs import (
    Clock,
    Engine,
    RunContext,
    Schema,
    TaskRegistry,
    default_registry,
    delete_rows_of_deleted_runs,
)
from polaris_jupyter.jobs.backends import engine_for
from polaris_jupyter.tasks.cleanup import CleanupStep, register_cleanup
from polaris_jupyter.tasks.generate import GenerationService
from polaris_jupyter.tasks.generate import install as install_generation
from polaris_jupyter.tasks.run_notebook import register_run_notebook
from polaris_jupyter.tools.edits import EDITS_SCHEMA, SqliteEditJournal
from polaris_jupyter.tools.mcp import McpManager
from polaris_jupyter.tools.notebook_proposals import PROPOSALS_SCHEMA, SqliteProposals
from polaris_jupyter.tools.sandbox import protect_private_path

if TYPE_CHECKING:
    from polaris_jupyter.server.kernel_routes import KernelWorkers
    from polaris_jupyter.tools.notebook_kernel import NotebookKernels

__all__ = ["PolarisRuntime", "TaskModuleError"]

log = logging.getLogger("polaris_jupyter")
#: Lines of an import error's traceback kept for /health and the runs dashboard.
TRACEBACK_TAIL_LINES = 12
#: The parts' tables with rows per run (column ``run_id``): pruned with their runs by cleanup.
RUN_ROW_TABLES: tuple[tuple[Schema, str], ...] = (
    (PROPOSALS_SCHEMA, "cell_proposals"),
    (EDITS_SCHEMA, "file_edits"),
    (APPROVALS_SCHEMA, "approvals"),
)


@dataclass(frozen=True)
class TaskModuleError:
    """A module of ``PolarisConfig.task_modules`` that failed to import (its tasks are missing)."""

    module: str
    error: str
    traceback: str

    def to_json(self) -> dict[str, str]:
        return {"module": self.module, "error": self.error, "traceback": self.traceback}


class PolarisRuntime:
    """Owns the engine and the services built on it (chat, generation) for one host process."""

    def __init__(
        self,
        config: PolarisConfig | None = None,
        *,
        root_dir: str | Path = ".",
        registry: TaskRegistry | None = None,
        clock: Clock | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.config = config or PolarisConfig()
        self.root_dir = Path(root_dir).resolve()
        # SQLite (db_path), or PostgreSQL + DBOS when database_url is set (jobs/backends.py);
        # a worker passes its own engine (polaris_jupyter/worker.py).
        self.engine = engine or engine_for(self.config, registry or default_registry, clock=clock)
        #: Run after the engine (and its store) started, e.g. schema migrations of services.
        self.startup_hooks: list[Callable[[], Awaitable[None]]] = []
        self.cleanup_steps: list[CleanupStep] = []
        self.task_module_errors: list[TaskModuleError] = []
        self._started = False
        # The parts, in order; each may use the ones before it. Their tasks are registered here,
        # before the engine starts, so recovered runs find them.
        db = self.config.db_path
        for private in (db, f"{db}-wal", f"{db}-shm", f"{db}.lock", self.config.keys_path):
            protect_private_path(private)  # no tool reads the database or the stored keys
        self.models = ModelService(self.config)
        #: Inline completions: on the chat's chains, in memory, no runs (agent/completions.py says why).
        self.completions = CompletionService(self.models.chain_for, CompletionSettings.from_config(self.config))
        self.journal = SqliteEditJournal(self.engine.store)  # the store is the file's one writer
        self.chat: ChatService = install_chat(self)
        follow_remote_answers(self.chat)  # PostgreSQL: a worker's answer frees its conversation here too
        self.generation: GenerationService = install_generation(self)
        register_run_notebook(self.engine, self.root_dir)
        self.mcp = McpManager(self.config, self.root_dir)  # MCP servers' tools (tools/mcp.py); connect at start
        #: Kernels that define tasks (the server extension sets it; None inside a kernel).
        self.kernel_workers: KernelWorkers | None = None
        #: The notebooks' kernels, for runNotebookCell and kernel variables (the server extension
        #: sets ServerKernels; None inside a kernel, where runNotebookCell starts fresh kernels).
        self.notebook_kernels: NotebookKernels | None = None
        #: Cell edits the model proposed (proposeCellEdit), applied or discarded through the API.
        self.proposals = SqliteProposals(self.engine.store)
        self.cleanup_steps.append(self._delete_rows_of_deleted_runs)
        self.api = PolarisAPI(self)

    @property
    def part_names(self) -> list[str]:
        return ["engine", "chat", "generation", "run-notebook", *(["kernel-workers"] if self.kernel_workers is not None else [])]

    async def start(self) -> None:
        if self._started:
            return
        self._import_task_modules()
        register_cleanup(
            self.engine,
            retention_days=self.config.retention_days,
            cron=self.config.cleanup_cron,
            timezone=self.config.cleanup_timezone,
            steps=self.cleanup_steps,
        )
        await self.engine.start()
        for hook in self.startup_hooks:
            await hook()
        await self.mcp.start()  # reads mcp.json; the servers connect in the background
        self._started = True
        log.info("polaris: engine started (db %s, pool %d)", self.engine.store.path, self.engine.pool_size)

    async def _delete_rows_of_deleted_runs(self, _ctx: RunContext) -> dict[str, Any]:
        """Cleanup step: the parts' per-run rows (proposals, file edits, approvals) of runs that
        retention or a user deleted; runs still kept, WAITING ones included, keep theirs."""
        store = self.engine.store
        deleted: dict[str, int] = {}
        for schema, table in RUN_ROW_TABLES:
            await store.ensure_schema(schema)
            deleted[table] = await delete_rows_of_deleted_runs(store, table)
        return {"deletedRunRows": deleted}

    def _import_task_modules(self) -> None:
        """Import ``task_modules``; one that fails is reported (log, /health) and the rest work."""
        self.task_module_errors = []
        for name in self.config.task_modules:
            try:
                importlib.import_module(name)
            except Exception as exc:
                tail = "".join(traceback.format_exception(exc)[-TRACEBACK_TAIL_LINES:])
                error = TaskModuleError(name, f"{type(exc).__name__}: {exc}", tail)
                self.task_module_errors.append(error)
                log.error("polaris: task module %s failed to import; its tasks are missing: %s\n%s", name, error.error, tail)
                continue
            log.info("polaris: imported task module %s", name)

    async def stop(self) -> None:
        if not self._started:
            return
        # The engine first: running attempts are interrupted (and resume after a restart) while
        # the clients they use are still open; closing a client under them would fail them.
        await self.engine.stop()
        await self.mcp.stop()
        await self.completions.stop()  # before the chains it streams from close
        await self.models.stop()
        await self.journal.close()
        await _stop_bundled_model()
        self._started = False

    @property
    def started(self) -> bool:
        return self._started


async def _stop_bundled_model() -> None:
    """Stop the bundled llama.cpp server with its host (only if this process started it)."""
    module = sys.modules.get("polaris_jupyter.agent.local_model")
    server = getattr(module, "_shared_server", None) if module is not None else None
    if server is not None and server.running:
        await server.stop()
