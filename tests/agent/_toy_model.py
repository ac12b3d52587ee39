"""The bundled model, "installed" for a test and served by a scripted server whose every request
is a bug unless the bundled model was pinned, alone, or enabled as a fallback (issue 11)."""

from __future__ import annotations

import socket
import sys
import types

import pytest

from polaris_jupyter.agent import providers
from polaris_jupyter.testing import Response, ScriptedModelServer

#: Provider settings a developer's shell may carry; every toy-model test starts without them.
PROVIDER_ENV = ("CEREBRAS_API_KEY", "OPENROUTER_API_KEY", "POLARIS_PROVIDER", "POLARIS_MODEL",
                "POLARIS_LOCAL_BASE_URL", "POLARIS_BUNDLED_FALLBACK", "OPENAI_API_KEY", "OPENAI_BASE_URL")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def install_toy_model(monkeypatch: pytest.MonkeyPatch) -> ScriptedModelServer:
    """Stand a toy server in for the bundled model and clear the provider environment.

    The default local URL points at a free port nobody listens on, so only the fake bundled
    model can answer "local" requests. The caller stops the returned server.
    """
    toy = ScriptedModelServer.start_in_thread(default=lambda _body: Response(text="toy hallucination"))

    class Shared:
        model_name = "smol"
        running = True

        async def ensure_started(self) -> str:
            return toy.base_url

        async def stop(self) -> None:
            pass

    shared = Shared()
    fake = types.ModuleType("polaris_jupyter.agent.local_model")
    fake.get_local_model_server = lambda: shared  # type: ignore[attr-defined]
    fake.bundled_model_available = lambda: True  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "polaris_jupyter.agent.local_model", fake)
    monkeypatch.setattr(providers, "DEFAULT_LOCAL_BASE_URL", f"http://127.0.0.1:{free_port()}/v1")
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    return toy
