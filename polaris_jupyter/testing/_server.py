"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1 (tornado, real HTTP + SSE).

Each request takes the next queued :class:`Response`, else asks ``responder(request_json)``,
else the ``default`` responder (echo). Every request is recorded (body, headers, tokens sent
with their send times, whether the client went away early), so tests can assert on what the
client really sent and on cancellation reaching the wire.

Runs in the current event loop (``async with ScriptedModelServer() as server``) or in its own
thread for sync code and notebooks (``ScriptedModelServer.start_in_thread()`` / ``.stop()``).
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import json
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import tornado.httpserver
import tornado.iostream
import tornado.netutil
import tornado.web

from polaris_jupyter.testing._chat_handler import ChatCompletionsHandler
from polaris_jupyter.testing._completion_handler import TextCompletionsHandler
from polaris_jupyter.testing._script import Responder, Response, echo_responder

__all__ = ["RecordedRequest", "ScriptedModelServer"]


@dataclass
class RecordedRequest:
    """One request as the server saw it, and what happened to its response."""

    index: int
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    received_at: float
    stream: bool = False
    response: Response | None = None
    status: int = 200
    tokens_sent: int = 0
    token_times: list[float] = field(default_factory=list)
    token_offsets: list[int] = field(default_factory=list)
    client_disconnected: bool = False
    server_disconnected: bool = False
    completed: bool = False
    finished_at: float | None = None
    _finished: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list((self.body or {}).get("messages") or [])

    @property
    def tools(self) -> list[dict[str, Any]] | None:
        return (self.body or {}).get("tools")

    @property
    def tool_choice(self) -> Any:
        return (self.body or {}).get("tool_choice")


class ScriptedModelServer:
    """Scripted chat-completions server. ``base_url`` ends in ``/v1``; times are ``time.perf_counter()``."""

    def __init__(
        self,
        responses: Iterable[Response] = (),
        *,
        responder: Responder | None = None,
        default: Responder | None = echo_responder,
        model: str = "scripted-model",
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        validate: bool = True,
        reject_streaming_tools: bool = False,
        reject_null_content: bool = False,
        repeat_script: bool = False,
    ) -> None:
        self.model = model
        #: More model ids ``GET /v1/models`` lists after ``model`` (the chat route answers any name).
        self.extra_models: list[str] = []
        self.host = host
        self.port = port
        self.api_key = api_key
        self.validate = validate
        self.reject_streaming_tools = reject_streaming_tools
        self.reject_null_content = reject_null_content
        self.repeat_script = repeat_script
        self.responder = responder
        self.default = default
        self.requests: list[RecordedRequest] = []
        self.token_sent_times: list[float] = []
        self._queue: collections.deque[Response] = collections.deque(responses)
        self._lock = threading.Lock()
        self._http: tornado.httpserver.HTTPServer | None = None
        self._active: set[ChatCompletionsHandler] = set()
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    # -- scripting ----------------------------------------------------------------------------
    def enqueue(self, *responses: Response) -> None:
        """Append replies to the script (thread-safe)."""
        with self._lock:
            self._queue.extend(responses)

    @property
    def pending(self) -> int:
        """Scripted replies not used yet."""
        with self._lock:
            return len(self._queue)

    def clear(self) -> None:
        """Forget queued replies and recorded requests."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.token_sent_times.clear()

    async def next_response(self, request: dict[str, Any], route: str = "chat") -> Response:
        """The first queued reply for ``route`` (untagged replies serve both), else the responder's."""
        with self._lock:
            for i, response in enumerate(self._queue):
                if response.route in (None, route):
                    del self._queue[i]
                    if self.repeat_script:
                        self._queue.append(response)
                    return response
        for fn in (self.responder, self.default):
            if fn is None:
                continue
            result = fn(request)
            if inspect.isawaitable(result):
                result = await result
            if result is not None:
                return result
        return Response.error(500, "The scripted model has no response left for this request.")

    # -- records ------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._http is None:
            raise RuntimeError("the scripted model server is not started")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def record(self, request: Any, body: dict[str, Any] | None) -> RecordedRequest:
        with self._lock:
            rec = RecordedRequest(
                index=len(self.requests), method=request.method, path=request.path,
                headers={k.lower(): v for k, v in request.headers.get_all()}, body=body,
                received_at=time.perf_counter(),
                stream=bool(isinstance(body, dict) and body.get("stream")),
            )
            self.requests.append(rec)
        return rec

    async def wait_for_requests(self, count: int, *, timeout_s: float = 10.0) -> list[RecordedRequest]:
        """Wait until at least ``count`` chat requests arrived (works from any event loop)."""
        deadline = time.monotonic() + timeout_s
        while len(self.chat_requests) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"expected {count} chat requests, got {len(self.chat_requests)}")
            await asyncio.sleep(0.005)
        return self.chat_requests

    async def wait_finished(self, index: int = -1, *, timeout_s: float = 10.0) -> RecordedRequest:
        """Wait until the handler of chat request ``index`` is done (sent, failed or saw a disconnect)."""
        deadline = time.monotonic() + timeout_s
        while True:
            reqs = self.chat_requests
            if reqs and (index < len(reqs) and index >= -len(reqs)) and reqs[index].finished:
                return reqs[index]
            if time.monotonic() > deadline:
                raise TimeoutError(f"chat request {index} did not finish within {timeout_s} s")
            await asyncio.sleep(0.005)

    # -- lifecycle in the current loop ------------------------------------------------------------
    def _app(self) -> tornado.web.Application:
        kwargs = {"server": self}
        return tornado.web.Application(
            [
                (r"/v1/chat/completions", ChatCompletionsHandler, kwargs),
                (r"/v1/completions", TextCompletionsHandler, kwargs),
                (r"/v1/models", _ModelsHandler, kwargs),
                (r"/.*", _NotFoundHandler, kwargs),
            ],
            log_function=lambda handler: None,
        )

    async def start(self) -> ScriptedModelServer:
        if self._http is not None:
            return self
        sockets = tornado.netutil.bind_sockets(self.port, self.host, family=socket.AF_INET)
        self.port = sockets[0].getsockname()[1]
        self._http = tornado.httpserver.HTTPServer(self._app())
        self._http.add_sockets(sockets)
        return self

    async def aclose(self) -> None:
        """Stop listening, end running streams, close every connection."""
        if self._http is None:
            return
        http, self._http = self._http, None
        http.stop()
        for handler in list(self._active):
            handler.wake(stopping=True)
        try:
            await asyncio.wait_for(http.close_all_connections(), 5.0)
        except (asyncio.TimeoutError, tornado.iostream.StreamClosedError):
            pass
        self._http = None

    async def __aenter__(self) -> ScriptedModelServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- lifecycle in a thread (sync code, notebooks) ---------------------------------------------
    @classmethod
    def start_in_thread(cls, *args: Any, startup_timeout_s: float = 10.0, **kwargs: Any) -> ScriptedModelServer:
        """Start a server with its own event loop in a daemon thread; returns once it listens."""
        server = cls(*args, **kwargs)
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            server._thread_loop = loop
            try:
                loop.run_until_complete(server.start())
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=run, name=f"scripted-model-{id(server):x}", daemon=True)
        server._thread = thread
        thread.start()
        if not ready.wait(startup_timeout_s):
            raise TimeoutError("the scripted model server did not start in time")
        if errors:
            raise errors[0]
        return server

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop a server started with :meth:`start_in_thread`."""
        loop, thread = self._thread_loop, self._thread
        if loop is None or thread is None:
            raise RuntimeError("stop() is for servers started with start_in_thread(); use aclose()")
        if loop.is_running():
            asyncio.run_coroutine_threadsafe(self.aclose(), loop).result(timeout_s)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)
        self._thread = self._thread_loop = None

    def __enter__(self) -> ScriptedModelServer:
        if self._thread is None:
            raise RuntimeError("use `with ScriptedModelServer.start_in_thread() as server:`")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _JsonHandler(tornado.web.RequestHandler):
    def initialize(self, server: ScriptedModelServer) -> None:
        self.server = server

    def write_json(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))


class _ModelsHandler(_JsonHandler):
    """``GET /v1/models``: ``model`` and ``extra_models``; 401 without the key when ``api_key`` is set."""

    def get(self) -> None:
        rec = self.server.record(self.request, None)
        rec.completed = True
        rec._finished.set()
        key = self.server.api_key
        if key is not None and self.request.headers.get("Authorization", "") != f"Bearer {key}":
            rec.status = 401
            self.write_json(401, {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                                            "param": None, "code": "invalid_api_key"}})
            return
        self.write_json(200, {"object": "list", "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "polaris-scripted"}
            for name in (self.server.model, *self.server.extra_models)]})


class _NotFoundHandler(_JsonHandler):
    def prepare(self) -> None:
        rec = self.server.record(self.request, None)
        rec.status = 404
        rec._finished.set()
        self.write_json(404, {"error": {"message": f"Unknown route {self.request.method} {self.request.path}",
                                        "type": "invalid_request_error", "param": None, "code": None}})
