"""A scripted OpenAI-compatible model server for tests, notebooks and benchmarks.

Example (sync, e.g. in a notebook)::

    from polaris_jupyter.testing import Response, ScriptedModelServer

    server = ScriptedModelServer.start_in_thread()
    server.enqueue(Response(text="Hello there", tokens_per_s=50))
    # point OPENAI_BASE_URL at server.base_url ...
    server.stop()

Example (async)::

    async with ScriptedModelServer([Response.tool("readFile", {"path": "a.py"})]) as server:
        ...
        assert server.requests[0].body["tools"]
"""

from __future__ import annotations

from polaris_jupyter.testing._script import (
    Responder,
    Response,
    ScriptedToolCall,
    echo_responder,
    load_script,
    lorem_tokens,
    split_tokens,
)
from polaris_jupyter.testing._server import RecordedRequest, ScriptedModelServer

__all__ = [
    "RecordedRequest",
    "Responder",
    "Response",
    "ScriptedModelServer",
    "ScriptedToolCall",
    "echo_responder",
    "load_script",
    "lorem_tokens",
    "split_tokens",
]
