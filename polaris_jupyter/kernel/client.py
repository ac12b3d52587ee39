"""The kernel's Polaris client: one API, two backends.

When the kernel was launched by a Jupyter server running the Polaris extension, it inherits
``POLARIS_URL`` and ``POLARIS_TOKEN`` and talks to that server's engine (REST + WebSocket).
Otherwise it hosts the same engine in the kernel process. Either way::

    from polaris_jupyter.kernel import get_client

    polaris = get_client()
    run = polaris.trigger("hello", {"name": "Ada"}, delay="5s")
    run.wait()                       # -> the finished run as JSON
    await polaris.aio.runs(limit=5)  # the async flavour, for notebook cells that await

Sync methods block only the calling cell; the work itself runs on a loop thread of its own
(see ``_loop.py``), so nothing here ever blocks the kernel's event loop.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import warnings
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from polaris_jupyter.kernel._base import FINAL_RUN_STATUSES, Backend, PolarisError, trigger_options
from polaris_jupyter.kernel._loop import LoopThread

if TYPE_CHECKING:
    from polaris_jupyter.kernel._bridge import TaskBridge
    from polaris_jupyter.kernel.widgets import ChatPanel, GenerationProgress

__all__ = ["Polaris", "PolarisError", "RunRef", "connect", "disconnect", "get_client"]

T = TypeVar("T")
log = logging.getLogger("polaris_jupyter.kernel")
#: Default time limit of one request made from a cell (waits and streams have their own).
REQUEST_TIMEOUT_S = 60.0


@dataclass
class RunRef:
    """A run triggered from the kernel: its id plus ``get()``, ``wait()``, ``cancel()``, ``replay()``."""

    id: str
    client: Polaris = field(repr=False, compare=False)
    is_cached: bool = False

    def get(self) -> dict[str, Any]:
        """The run as JSON (status, output, error, attempts, logs...)."""
        return self.client.run(self.id)

    def status(self) -> str:
        return str(self.get()["status"])

    def wait(self, timeout_s: float | None = None) -> dict[str, Any]:
        """Block this cell until the run is final; returns the run."""
        return self.client.wait(self.id, timeout_s=timeout_s)

    def cancel(self) -> dict[str, Any]:
        return self.client.cancel(self.id)

    def replay(self, resume: bool = False) -> RunRef:
        return self.client.replay(self.id, resume=resume)


class AsyncPolaris:
    """``polaris.aio``: every backend method as a coroutine you can ``await`` in a cell.

    Arguments are those of the REST API (e.g. ``await polaris.aio.trigger("t", payload,
    {"delay": "5s"})``); results are the same JSON dicts.
    """

    def __init__(self, client: Polaris) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
        if name.startswith("_"):
            raise AttributeError(name)
        method = getattr(self._client.backend, name)
        if not callable(method):
            raise AttributeError(name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self._client.loop.arun(method(*args, **kwargs))

        call.__doc__ = method.__doc__
        return call


class Polaris:
    """The notebook-facing client. Chat, runs, schedules, generation and config in one place."""

    def __init__(self, backend: Backend, loop: LoopThread) -> None:
        self.backend = backend
        self.loop = loop
        self.conversation_id: str | None = None
        self.bridge: TaskBridge | None = None
        self.aio = AsyncPolaris(self)

    def __repr__(self) -> str:
        return f"<Polaris {self.mode}: {self.description}>"

    @property
    def mode(self) -> str:
        """``"remote"`` (the server's engine) or ``"local"`` (an engine inside this kernel)."""
        return self.backend.mode

    @property
    def description(self) -> str:
        return self.backend.description

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = REQUEST_TIMEOUT_S) -> T:
        """Run a backend coroutine on the Polaris loop and wait for it."""
        return self.loop.run(coro, timeout_s)

    # -- chat ------------------------------------------------------------------------------------
    def current_conversation(self) -> str:
        """The id of this kernel's current conversation (created on first use)."""
        if self.conversation_id is None:
            self.conversation_id = self.call(self.backend.create_conversation())["id"]
        return self.conversation_id

    def new_conversation(self, title: str | None = None) -> dict[str, Any]:
        """Start a new conversation and make it the current one."""
        conversation = self.call(self.backend.create_conversation(title))
        self.conversation_id = conversation["id"]
        return conversation

    def conversations(self) -> list[dict[str, Any]]:
        return self.call(self.backend.conversations())

    def messages(self, conversation_id: str | None = None) -> list[dict[str, Any]]:
        return self.call(self.backend.messages(conversation_id or self.current_conversation()))

    def send(self, text: str, *, context: dict[str, Any] | None = None, conversation_id: str | None = None) -> dict[str, Any]:
        """Post a message; returns ``{"messageId", "runId"}`` at once (the answer streams as events)."""
        return self.call(self.backend.post_message(conversation_id or self.current_conversation(), text, context))

    def ask(self, text: str, *, context: dict[str, Any] | None = None, timeout_s: float | None = None) -> dict[str, Any]:
        """Post a message and wait for the whole answer; returns the finished assistant message."""
        posted = self.send(text, context=context)
        self.call(self.backend.wait_run(posted["runId"], timeout_s), timeout_s=None)
        return next(m for m in self.messages() if m["id"] == posted["messageId"])

    def cancel_message(self, message_id: str) -> dict[str, Any]:
        return self.call(self.backend.cancel_message(message_id))

    def retry_message(self, message_id: str) -> dict[str, Any]:
        return self.call(self.backend.retry_message(message_id))

    # -- tasks and runs --------------------------------------------------------------------------
    def tasks(self) -> list[dict[str, Any]]:
        self._sync_kernel_tasks()
        return self.call(self.backend.tasks())

    def trigger(self, task_id: str, payload: Any = None, **options: Any) -> RunRef:
        """Trigger a run. Options: delay, ttl, idempotency_key, idempotency_key_ttl, tags,
        metadata, concurrency_key, queue, max_attempts, max_duration (durations as 30, "30s", "5m")."""
        self._sync_kernel_tasks(task_id)
        result = self.call(self.backend.trigger(task_id, payload, trigger_options(**options)))
        return RunRef(result["id"], self, bool(result.get("isCached")))

    def batch_trigger(self, task_id: str, items: list[Any]) -> list[RunRef]:
        """Trigger up to 1,000 runs in one round trip. Items are payloads, or
        ``{"payload": ..., "options": {...}}`` dicts with REST options."""
        self._sync_kernel_tasks(task_id)
        normalized = [
            item if isinstance(item, dict) and set(item) <= {"payload", "options"} and "payload" in item else {"payload": item}
            for item in items
        ]
        result = self.call(self.backend.batch_trigger(task_id, normalized))
        return [RunRef(r["id"], self, bool(r.get("isCached"))) for r in result["runs"]]

    def runs(self, *, status: str | None = None, task: str | None = None, tag: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """Recent runs, newest first (``status`` may list several: ``"FAILED,CRASHED"``)."""
        return list(self.call(self.backend.runs(status=status, task=task, tag=tag, limit=limit))["data"])

    def run(self, run_id: str) -> dict[str, Any]:
        return self.call(self.backend.run(run_id))

    def wait(self, run_id: str, timeout_s: float | None = None) -> dict[str, Any]:
        """Block until the run is final and return it (Ctrl-C / interrupt stops waiting, not the run)."""
        return self.call(self.backend.wait_run(run_id, timeout_s), timeout_s=None)

    def cancel(self, run_id: str) -> dict[str, Any]:
        return self.call(self.backend.cancel_run(run_id))

    def replay(self, run_id: str, *, resume: bool = False) -> RunRef:
        return RunRef(self.call(self.backend.replay_run(run_id, resume))["id"], self)

    def revert(self, run_id: str, *, force: bool = False) -> list[str]:
        """Undo the file edits a run made; returns the reverted paths. A file changed after the
        run is a conflict (PolarisError 409, nothing changed) unless ``force``."""
        return list(self.call(self.backend.revert_run(run_id, force))["reverted"])

    def schedules(self) -> list[dict[str, Any]]:
        return self.call(self.backend.schedules())

    def schedule(
        self, task_id: str, cron: str, *, timezone: str = "UTC", payload: Any = None, external_id: str | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Run ``task_id`` on a 5-field cron schedule (each firing is a run). Options apply to every
        firing, as for :meth:`trigger` (max_attempts, max_duration, ttl, tags, queue ...)."""
        self._sync_kernel_tasks(task_id)
        return self.call(
            self.backend.create_schedule(task_id, cron, timezone, payload, external_id, trigger_options(**options))
        )

    def unschedule(self, schedule_id: str) -> None:
        self.call(self.backend.delete_schedule(schedule_id))

    # -- config and generation ------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return self.call(self.backend.config())

    def set_model(self, model: str | None = None, *, provider: str | None = None) -> dict[str, Any]:
        return self.call(self.backend.set_model(provider, model))

    def project_kinds(self) -> list[dict[str, Any]]:
        return self.call(self.backend.project_kinds())

    def generate(self, description: str, *, kind: str = "react-vite", path: str = "app", overwrite: bool = False) -> RunRef:
        """Start a project generation run (watch it with :meth:`progress`)."""
        return RunRef(self.call(self.backend.generate(description, kind, path, overwrite))["runId"], self)

    # -- widgets ---------------------------------------------------------------------------------
    def chat_panel(self, conversation_id: str | None = None) -> ChatPanel:
        from polaris_jupyter.kernel.widgets import ChatPanel

        return ChatPanel(self, conversation_id=conversation_id)

    def progress(self, run_id: str) -> GenerationProgress:
        from polaris_jupyter.kernel.widgets import GenerationProgress

        return GenerationProgress(self, run_id)

    # -- kernel-defined tasks --------------------------------------------------------------------
    def serve_tasks(self) -> list[str]:
        """Offer this kernel's ``@task`` definitions to the server (remote mode); returns their ids.

        Runs of those tasks are stored by the server but execute here, for as long as this
        kernel lives. Called automatically after each cell once the extension is loaded, and
        before triggering a task this kernel defines.
        """
        if self.mode != "remote":
            return []
        if self.bridge is None:
            from polaris_jupyter.kernel._bridge import TaskBridge

            self.bridge = TaskBridge(self.backend, self.loop)  # type: ignore[arg-type]
        reply = self.call(self.bridge.sync(), timeout_s=30)
        for task_id, reason in reply["refused"].items():
            print(f"Polaris: the server did not take task {task_id!r} from this kernel: {reason}")
        return list(reply["claimed"])

    def _sync_kernel_tasks(self, task_id: str | None = None) -> None:
        if self.mode != "remote":
            return
        from polaris_jupyter.jobs import default_registry

        if self.bridge is not None or (task_id is not None and default_registry.get(task_id) is not None):
            self.serve_tasks()

    def close(self) -> None:
        if self.bridge is not None:
            bridge, self.bridge = self.bridge, None
            self.call(bridge.close(), timeout_s=10)
        self.call(self.backend.close(), timeout_s=15)


_lock = threading.RLock()
_loop_thread: LoopThread | None = None
_client: Polaris | None = None
_atexit_registered = False


def _shared_loop() -> LoopThread:
    global _loop_thread
    if _loop_thread is None or not _loop_thread.running:
        _loop_thread = LoopThread()
    return _loop_thread


def connect(
    mode: str = "auto",
    *,
    url: str | None = None,
    token: str | None = None,
    scheme: str = "Bearer",
    root_dir: str | None = None,
    db_path: str | None = None,
) -> Polaris:
    """(Re)connect this kernel's client and make it the one :func:`get_client` returns.

    ``mode="auto"`` uses the server named by ``POLARIS_URL``/``POLARIS_TOKEN`` when set and
    reachable, else hosts the engine in this kernel; ``"remote"`` or ``"local"`` force one.
    """
    global _client, _atexit_registered
    if mode not in ("auto", "remote", "local"):
        raise PolarisError(f"mode must be 'auto', 'remote' or 'local', not {mode!r}")
    with _lock:
        disconnect()
        loop = _shared_loop()
        url = url or os.environ.get("POLARIS_URL") or None
        token = token if token is not None else os.environ.get("POLARIS_TOKEN", "")
        backend: Backend | None = None
        if mode == "remote" or (mode == "auto" and url and token):
            from polaris_jupyter.kernel._remote import RemoteBackend

            remote = RemoteBackend(url or "", token or "", scheme=scheme)
            try:
                loop.run(remote.start(), timeout_s=30)
                backend = remote
            except (PolarisError, TimeoutError) as exc:
                loop.run(remote.close(), timeout_s=10)
                if mode == "remote":
                    status = exc.status if isinstance(exc, PolarisError) else 503
                    raise PolarisError(f"cannot use the Polaris server at {url}: {exc}", status) from exc
                warnings.warn(f"Polaris: the server at {url} is not reachable ({exc}); using an engine in this kernel", stacklevel=2)
        if backend is None:
            from polaris_jupyter.kernel._local import LocalBackend

            local = LocalBackend(root_dir=root_dir, db_path=db_path)
            loop.run(local.start(), timeout_s=60)
            backend = local
        _client = Polaris(backend, loop)
        if not _atexit_registered:  # flush an in-kernel store, tell the server this kernel is gone
            atexit.register(disconnect)
            _atexit_registered = True
        return _client


def get_client() -> Polaris:
    """This kernel's client, connecting on first use (see :func:`connect`)."""
    with _lock:
        if _client is not None:
            return _client
        return connect()


def disconnect() -> None:
    """Close this kernel's client (and stop an in-kernel engine)."""
    global _client
    with _lock:
        if _client is None:
            return
        client, _client = _client, None
        try:
            client.close()
        except Exception as exc:
            log.warning("polaris: error while closing the client: %s", exc)


def is_final(status: str | None) -> bool:
    return status in FINAL_RUN_STATUSES
