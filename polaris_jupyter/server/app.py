"""The Jupyter server extension: hosts the engine, serves REST + WebSocket under ``/polaris/``.

At start it exports ``POLARIS_URL`` and ``POLARIS_TOKEN`` (a random per-server internal key)
into its own environment, so every kernel it launches inherits them and talks to this engine.
The handlers are generated from the route table (``polaris_jupyter.api.ROUTES``); the two
WebSocket routes are served by the classes named here.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from typing import Any

from jupyter_server.extension.application import ExtensionApp

from polaris_jupyter.config import PolarisConfig
from polaris_jupyter.runtime import PolarisRuntime
from polaris_jupyter.server.completion_routes import CompletionStreamHandler
from polaris_jupyter.server.events_ws import EventsWebSocket
from polaris_jupyter.server.handlers import make_handlers
from polaris_jupyter.server.kernel_routes import KernelWorkers, KernelWorkerSocket
from polaris_jupyter.tools.notebook_kernel import ServerKernels

__all__ = ["SOCKETS", "STREAMS", "PolarisApp"]

#: The WebSocket routes of the table and the classes that serve them.
SOCKETS: dict[str, type[Any]] = {"events": EventsWebSocket, "kernel_worker": KernelWorkerSocket}
#: The streaming routes of the table (NDJSON answers) and the classes that serve them.
STREAMS: dict[str, type[Any]] = {"complete": CompletionStreamHandler}


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
        self.runtime.kernel_workers = KernelWorkers(self.runtime)
        self.runtime.notebook_kernels = ServerKernels.from_serverapp(self.serverapp)
        self.settings.update(
            {
                "polaris_runtime": self.runtime,
                "polaris_api": self.runtime.api,
                "polaris_kernel_workers": self.runtime.kernel_workers,
                "polaris_internal_key": internal_key,
                "polaris_root_dir": root_dir,
            }
        )
        os.environ["POLARIS_URL"] = self.serverapp.connection_url if self.serverapp else ""
        os.environ["POLARIS_TOKEN"] = internal_key
        os.environ["POLARIS_DB_PATH"] = self.polaris_config.db_path
        os.environ["POLARIS_ROOT_DIR"] = str(self.runtime.root_dir)  # kernels map their paths onto the workspace
        self.log.info("polaris: db %s, kernels reach the engine at %s", self.polaris_config.db_path, os.environ["POLARIS_URL"])

    def initialize_handlers(self) -> None:
        self.handlers.extend(make_handlers({**SOCKETS, **STREAMS}))

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        if not self.polaris_config.start_engine:
            return
        try:
            await self.runtime.start()
        except Exception:
            self.log.exception("polaris: the engine failed to start")
            raise
        for error in self.runtime.task_module_errors:
            self.log.error("polaris: task module %s did not load (%s); see /polaris/api/v1/health", error.module, error.error)

    async def stop_extension(self) -> None:
        try:
            await asyncio.wait_for(self.runtime.stop(), timeout=10)
        except Exception:
            self.log.exception("polaris: error while stopping the engine")


main = launch_new_instance = PolarisApp.launch_instance
