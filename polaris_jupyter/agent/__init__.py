"""The model side of polaris-jupyter: provider chain with fallback and the streaming tool loop.

Example::

    chain = await ProviderChain.from_env()
    result = await run_agent_loop(chain=chain, messages=[{"role": "user", "content": "hi"}],
                                  registry=default_registry, ctx=ToolContext(root=Path(".")))
    print(result.text, result.provider, result.model)
"""

from __future__ import annotations

from polaris_jupyter.agent.chain import ChatStream, ProviderChain, StreamDelta, ToolCallDelta
from polaris_jupyter.agent.errors import AllProvidersFailed, ModelError, ModelStreamError, NoProviderError
from polaris_jupyter.agent.events import (
    FinishReason,
    LoopEvent,
    LoopResult,
    ProviderSelected,
    StepFinished,
    TextDelta,
    ToolCallFinished,
    ToolCallRecord,
    ToolCallStarted,
    Usage,
)
from polaris_jupyter.agent.loop import ToolChoice, run_agent_loop
from polaris_jupyter.agent.providers import (
    DEFAULT_LOCAL_BASE_URL,
    PROVIDER_NAMES,
    ProviderConfig,
    bundled_model_available,
    discover_providers,
    known_providers,
    probe_tcp,
    providers_from_env,
)

__all__ = [
    "DEFAULT_LOCAL_BASE_URL",
    "PROVIDER_NAMES",
    "AllProvidersFailed",
    "ChatStream",
    "FinishReason",
    "LoopEvent",
    "LoopResult",
    "ModelError",
    "ModelStreamError",
    "NoProviderError",
    "ProviderChain",
    "ProviderConfig",
    "ProviderSelected",
    "StepFinished",
    "StreamDelta",
    "TextDelta",
    "ToolCallDelta",
    "ToolCallFinished",
    "ToolCallRecord",
    "ToolCallStarted",
    "ToolChoice",
    "Usage",
    "bundled_model_available",
    "discover_providers",
    "known_providers",
    "probe_tcp",
    "providers_from_env",
    "run_agent_loop",
]
