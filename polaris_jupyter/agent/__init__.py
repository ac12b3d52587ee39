"""The model side of polaris-jupyter: provider chain with fallback and the streaming tool loop.

Example::

    chain = await ProviderChain.from_env()
    result = await run_agent_loop(chain=chain, messages=[{"role": "user", "content": "hi"}],
                                  registry=default_registry, ctx=ToolContext(root=Path(".")))
    print(result.text, result.provider, result.model)
"""

from __future__ import annotations

from polaris_jupyter.agent.chain import (
    DEFAULT_DEGRADE_TTL_S,
    ChatStream,
    ProviderChain,
    StreamDelta,
    SystemPrompt,
    ToolCallDelta,
    ToolMode,
)
from polaris_jupyter.agent.errors import (
    AllProvidersFailed,
    ModelError,
    ModelStreamError,
    NoProviderError,
    ProviderError,
    provider_error,
    refuses_tools,
    retry_after_s,
)
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
    BUNDLED_FALLBACK_ENV,
    DEFAULT_LOCAL_BASE_URL,
    PROVIDER_NAMES,
    ProviderConfig,
    bundled_fallback_from_env,
    bundled_model_available,
    discover_providers,
    known_providers,
    probe_tcp,
    providers_from_env,
)

__all__ = [
    "BUNDLED_FALLBACK_ENV",
    "DEFAULT_DEGRADE_TTL_S",
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
    "ProviderError",
    "ProviderSelected",
    "StepFinished",
    "StreamDelta",
    "SystemPrompt",
    "TextDelta",
    "ToolCallDelta",
    "ToolCallFinished",
    "ToolCallRecord",
    "ToolCallStarted",
    "ToolChoice",
    "ToolMode",
    "Usage",
    "bundled_fallback_from_env",
    "bundled_model_available",
    "discover_providers",
    "known_providers",
    "probe_tcp",
    "provider_error",
    "providers_from_env",
    "refuses_tools",
    "retry_after_s",
    "run_agent_loop",
]
