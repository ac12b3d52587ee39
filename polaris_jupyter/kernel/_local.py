"""The in-kernel backend: hosts a :class:`PolarisRuntime` (engine, chat, generation) in this process.

Used where no server extension is reachable (plain IPython, VS Code, nbclient, CI). Same tasks,
same semantics, same SQLite store format as the server. The kernel keeps its own database file
(``<jupyter data dir>/polaris/kernel.db`` unless ``POLARIS_DB_PATH`` says otherwise) and holds
an exclusive lock on it, because two engines must never drive one store.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

from polaris_jupyter.jobs import EventFilter, SubscriberLagging
from polaris_jupyter.kernel._base import Backend, PolarisError

__all__ = ["LocalBackend", "default_kernel_db_path"]


def default_kernel_db_path() -> Path:
    """Where an in-kernel engine keeps its runs (never the server's file while a server is around)."""
    explicit = os.environ.get("POLARIS_DB_PATH")
    if explicit and not os.environ.get("POLARIS_URL"):
        return Path(explicit)
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "polaris" / "kernel.db"


class LocalBackend(Backend):
    """Polaris hosted in this kernel (runs on the kernel's Polaris loop thread)."""

    mode = "local"

    def __init__(self, *, root_dir: str | Path | None = None, db_path: str | Path | None = None) -> None:
        self.root_dir = Path(root_dir or os.getcwd()).resolve()
        self.requested_db_path = Path(db_path) if db_path else None
        self.db_path: Path | None = None
        self.runtime: Any = None
        self._lock_file: IO[str] | None = None

    @property
    def description(self) -> str:
        return f"engine in this kernel (workspace {self.root_dir}, db {self.db_path})"

    def _claim_db(self) -> Path:
        wanted = (self.requested_db_path or default_kernel_db_path()).expanduser().resolve()
        candidates = [wanted, wanted.with_name(f"{wanted.stem}-{os.getpid()}{wanted.suffix}")]
        for path in candidates:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path.with_name(path.name + ".lock"), "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            self._lock_file = handle
            return path
        raise PolarisError(f"the Polaris database {wanted} is in use by another process", 409)

    async def start(self) -> None:
        if self.runtime is not None:
            return
        from polaris_jupyter.config import PolarisConfig
        from polaris_jupyter.runtime import PolarisRuntime

        self.db_path = self._claim_db()
        config = PolarisConfig()
        config.db_path = str(self.db_path)
        runtime = PolarisRuntime(config, root_dir=self.root_dir)
        try:
            await runtime.start()
        except BaseException:
            self._release_lock()
            raise
        self.runtime = runtime

    async def close(self) -> None:
        if self.runtime is not None:
            runtime, self.runtime = self.runtime, None
            await runtime.stop()
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    @property
    def engine(self) -> Any:
        if self.runtime is None:
            raise PolarisError("the in-kernel Polaris engine is not running", 503)
        return self.runtime.engine

    async def call(
        self, op: str, *, path: dict[str, str] | None = None, query: dict[str, Any] | None = None, body: Any = None
    ) -> Any:
        if self.runtime is None:
            raise PolarisError("the in-kernel Polaris engine is not running", 503)
        answer = await self.runtime.api.dispatch(op, path=path, query=query, body=body)
        return answer.body

    # -- events ---------------------------------------------------------------------------------
    async def last_event_seq(self) -> int:
        return int(self.engine.bus.last_seq)

    async def events(
        self, *, conversation_id: str | None = None, run_id: str | None = None, since: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        bus = self.engine.bus
        last = since if since is not None else bus.last_seq
        flt = EventFilter(run_id=run_id, conversation_id=conversation_id)
        while True:
            try:
                async for event in bus.subscribe(flt, last):
                    last = event.seq
                    yield event.to_json()
            except SubscriberLagging:
                continue  # resume from the last event we yielded
