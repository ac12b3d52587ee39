"""The Jupyter server extension: hosts the engine, serves REST + WebSocket under ``/polaris/``.

At start it exports ``POLARIS_URL`` and ``POLARIS_TOKEN`` (a random per-server internal key)
into its own environment, so every kernel it launches inherits them and talks to this engine.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from tornado import web

from polaris_jupyter.config import PolarisConfig
from polaris_jupyter.runtime import PolarisRuntime
from polaris_jupyter.server.base import PolarisHandler
from polaris_jupyter.server.events_ws import EventsWebSocket
from polaris_jupyter.server.openapi import OpenApiHandler
from polaris_jupyter.server.runs import RUN_HANDLERS

__all__ = ["EXTRA_HANDLERS", "PolarisApp"]

#: Other parts (chat, generation) append their routes here when imported.
EXTRA_HANDLERS: list[tuple[str, type[Any]]] = []


class PolarisApp(ExtensionApp):
    """polaris-jupyter server extension."""

    name = "polaris_jupyter"
    extension_url = "/polaris/api/openapi.json"
    load_other_extensions = True
    classes = [PolarisConfig]

    def initialize_settings(self) -> None:
        self.polaris_config = PolarisConfig(parent=self)
        internal_key = secrets.token_urlsafe(32)
        root_dir = getattr(self.serverapp, "root_dir", None) or os.getcwd()
        self.runtime = PolarisRuntime(self.polaris_config, root_dir=root_dir)
        self.settings.update(
            {"polaris_runtime": self.runtime, "polaris_internal_key": internal_key, "polaris_root_dir": root_dir}
        )
        os.environ["POLARIS_URL"] = self.serverapp.connection_url if self.serverapp else ""
        os.environ["POLARIS_TOKEN"] = internal_key
        os.environ["POLARIS_DB_PATH"] = self.polaris_config.db_path
        self.log.info("polaris: db %s, kernels reach the engine at %s", self.polaris_config.db_path, os.environ["POLARIS_URL"])

    def initialize_handlers(self) -> None:
        _import_route_modules()
        routes: list[tuple[str, Any]] = [
            *RUN_HANDLERS,
            *EXTRA_HANDLERS,
            ("/polaris/api/v1/events", EventsWebSocket),
            ("/polaris/api/openapi.json", OpenApiHandler),
            ("/polaris/api/v1/health", HealthHandler),
        ]
        self.handlers.extend(routes)

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        if not self.polaris_config.start_engine:
            return
        try:
            await self.runtime.start()
        except Exception:
            self.log.exception("polaris: the engine failed to start")
            raise

    async def stop_extension(self) -> None:
        try:
            await asyncio.wait_for(self.runtime.stop(), timeout=10)
        except Exception:
            self.log.exception("polaris: error while stopping the engine")


class HealthHandler(PolarisHandler):
    @web.authenticated
    async def get(self) -> None:
        runtime = self.runtime
        engine = runtime.engine
        self.send_json(
            {
                "ok": True,
                "version": _version(),
                "activeRuns": len(engine.active_runs()),
                "lastEventSeq": engine.bus.last_seq,
                "storeBytesWritten": engine.store.bytes_written,
                "services": sorted(runtime.services),
            }
        )


def _version() -> str:
    from polaris_jupyter._version import __version__

    return __version__


def _import_route_modules() -> None:
    """Import the parts that add routes (chat, generation, kernel tasks) if they exist."""
    import importlib

    for name in ("polaris_jupyter.server.chat_routes", "polaris_jupyter.server.generate_routes", "polaris_jupyter.server.kernel_routes"):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


main = launch_new_instance = PolarisApp.launch_instance
