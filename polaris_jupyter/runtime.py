"""The Polaris runtime: one engine plus the built-in tasks, hosted by a server or a kernel.

The server extension and the in-kernel fallback both build a :class:`PolarisRuntime`, so the
same tasks run with the same semantics and the same store format wherever they are hosted.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from polaris_jupyter.config import PolarisConfig
from polaris_jupyter.jobs import Clock, Engine, TaskRegistry, default_registry
from polaris_jupyter.tasks.cleanup import CleanupStep, register_cleanup

__all__ = ["PolarisRuntime"]

log = logging.getLogger("polaris_jupyter")


class PolarisRuntime:
    """Owns the engine and the services built on it (chat, generation) for one host process."""

    def __init__(
        self,
        config: PolarisConfig | None = None,
        *,
        root_dir: str | Path = ".",
        registry: TaskRegistry | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config or PolarisConfig()
        self.root_dir = Path(root_dir).resolve()
        self.engine = Engine(
            self.config.db_path,
            registry or default_registry,
            pool_size=self.config.pool_size,
            clock=clock,
            default_retry=self.config.retry_policy(),
        )
        self.services: dict[str, Any] = {}
        #: Run after the engine (and its store) started, e.g. schema migrations of services.
        self.startup_hooks: list[Callable[[], Awaitable[None]]] = []
        self.cleanup_steps: list[CleanupStep] = []
        self._started = False

    async def start(self) -> None:
        if self._started:
            return
        for name in self.config.task_modules:
            importlib.import_module(name)
            log.info("polaris: imported task module %s", name)
        for installer in _service_installers():
            await installer(self)
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
        self._started = True
        log.info("polaris: engine started (db %s, pool %d)", self.config.db_path, self.engine.pool_size)

    async def stop(self) -> None:
        if not self._started:
            return
        # The engine first: running attempts are interrupted (and resume after a restart) while
        # the clients they use are still open; closing a client under them would fail them.
        await self.engine.stop()
        for service in reversed(list(self.services.values())):
            stop = getattr(service, "stop", None)
            if stop is not None:
                await stop()
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


def _service_installers() -> list[Any]:
    """Services that hang off the runtime (chat, generation), imported only when present."""
    installers = []
    for module_name in ("polaris_jupyter.chat.service", "polaris_jupyter.tasks.generate"):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        installers.append(module.install)
    return installers
