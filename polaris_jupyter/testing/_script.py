"""What the scripted model says: one :class:`Response` per chat-completions request.

A response is plain data (text or explicit tokens, tool calls, timing, an HTTP error, a
disconnect) so tests, notebooks and the ``--script`` JSON file all describe replies the same
way. This module also builds the OpenAI-shaped JSON (stream chunks, full completions, errors).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = [
    "Responder",
    "Response",
    "ScriptedToolCall",
    "bad_request",
    "check_envelope",
    "echo_responder",
    "load_script",
    "lorem_tokens",
    "split_tokens",
]

_TOKEN_RE = re.compile(r"\s*\S+|\s+")

_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_denied", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_exceeded", "rate_limit_exceeded"),
}


def split_tokens(text: str) -> list[str]:
    """Split text into word-like tokens that join back to exactly ``text`` (leading space kept)."""
    return _TOKEN_RE.findall(text)


def lorem_tokens(n_tokens: int, *, seed: int = 0) -> list[str]:
    """``n_tokens`` deterministic word tokens (" lorem", " ipsum", ...), for long benchmark replies."""
    words = (
        "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut "
        "labore et dolore magna aliqua polaris jupyter stream token delta kernel"
    ).split()
    out: list[str] = []
    for i in range(n_tokens):
        word = words[(i * 7 + seed) % len(words)]
        out.append(word if i == 0 else " " + word)
    return out


@dataclass
class ScriptedToolCall:
    """One tool call the model makes. ``arguments`` as a dict is JSON-encoded; a str is sent as is
    (so a test can send broken JSON)."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments)


@dataclass
class Response:
    """One scripted reply.

    Timing: ``ttft_s`` before the first chunk, then one token every ``delay_s`` (or
    ``tokens_per_s``). Tokens are scheduled on absolute times, so a delay below the timer
    resolution still gives the right rate (due tokens are batched into one write).
    Failures: ``status`` >= 400 answers with an OpenAI-style error body, or with
    ``error_text`` as ``text/plain`` (a proxy's own page, e.g. :meth:`proxy_error`); add
    ``retry_after_s`` for a ``Retry-After`` header (``headers`` for anything else);
    ``disconnect_after_tokens`` drops the TCP connection after that many content tokens;
    ``error_after_tokens`` sends an in-stream ``{"error": ...}`` event instead.
    ``raw_events`` (streaming only) are written verbatim instead of generated chunks, to mimic
    a server's quirks (SSE comments, multi-line data, JSON where SSE was asked for).
    ``send_usage=False`` is a server that reports no usage at all (llama.cpp ignores
    ``stream_options.include_usage``; the full completion has no ``usage`` either).
    ``route`` (``"chat"`` or ``"completions"``) keeps a reply for that route: a request of the
    other route passes it over (a UI test's ghost-text request while typing must not take the
    chat turn's scripted tool call); None serves either.
    """

    text: str = ""
    tokens: list[str] | None = None
    tool_calls: list[ScriptedToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    delay_s: float = 0.0
    tokens_per_s: float | None = None
    ttft_s: float = 0.0
    status: int = 200
    error_message: str | None = None
    error_type: str | None = None
    error_param: str | None = None
    disconnect_after_tokens: int | None = None
    error_after_tokens: int | None = None
    usage: dict[str, int] | None = None
    send_usage: bool = True
    error_text: str | None = None
    retry_after_s: float | None = None
    argument_chunk_chars: int = 8
    headers: dict[str, str] = field(default_factory=dict)
    raw_events: list[str] | None = None
    route: str | None = None

    # -- convenience constructors -------------------------------------------------------------
    @classmethod
    def error(cls, status: int, message: str | None = None, **kwargs: Any) -> Response:
        return cls(status=status, error_message=message, **kwargs)

    @classmethod
    def proxy_error(cls, status: int = 503,
                    text: str = "upstream connect error or disconnect/reset before headers. "
                                "reset reason: connection failure", **kwargs: Any) -> Response:
        """A proxy's plain-text error page (Envoy's standard 503 text by default), not OpenAI JSON."""
        return cls(status=status, error_text=text, **kwargs)

    @classmethod
    def tool(cls, name: str, arguments: dict[str, Any] | str | None = None, *, text: str = "",
             call_id: str | None = None, **kwargs: Any) -> Response:
        """A reply with a single tool call (optionally preceded by text)."""
        call = ScriptedToolCall(name, {} if arguments is None else arguments, call_id)
        return cls(text=text, tool_calls=[call], **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Response:
        """Build from JSON (the ``--script`` file format): same field names, tool calls as dicts."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown response field(s) {sorted(unknown)}; allowed: {sorted(known)}")
        if data.get("route") not in (None, "chat", "completions"):
            raise ValueError(f"route must be 'chat', 'completions' or null, got {data.get('route')!r}")
        kwargs = dict(data)
        try:
            kwargs["tool_calls"] = [
                tc if isinstance(tc, ScriptedToolCall) else ScriptedToolCall(**tc)
                for tc in data.get("tool_calls", [])
            ]
        except TypeError as exc:
            raise ValueError(f"bad tool call in script (fields: name, arguments, id): {exc}") from None
        return cls(**kwargs)

    # -- derived values -----------------------------------------------------------------------
    @property
    def is_error(self) -> bool:
        return self.status >= 400

    def content_tokens(self) -> list[str]:
        return list(self.tokens) if self.tokens is not None else split_tokens(self.text)

    def token_interval_s(self) -> float:
        if self.tokens_per_s:
            return 1.0 / self.tokens_per_s
        return max(0.0, self.delay_s)

    def resolved_finish_reason(self) -> str:
        return self.finish_reason or ("tool_calls" if self.tool_calls else "stop")

    def resolved_calls(self) -> list[tuple[str, ScriptedToolCall]]:
        """Tool calls with ids filled in (``call_<hex>`` when the script gave none)."""
        return [(tc.id or f"call_{uuid.uuid4().hex[:24]}", tc) for tc in self.tool_calls]

    def error_body(self) -> dict[str, Any]:
        err_type, code = _ERROR_TYPES.get(self.status, ("server_error", None))
        message = self.error_message or {
            401: "Incorrect API key provided.",
            403: "You are not allowed to use this model.",
            404: "The model does not exist.",
            429: "Rate limit reached for requests. Please try again later.",
        }.get(self.status, f"The scripted server returned HTTP {self.status}.")
        return {"error": {"message": message, "type": self.error_type or err_type, "param": self.error_param,
                          "code": code}}


Responder = Callable[[dict[str, Any]], "Response | Awaitable[Response | None] | None"]


def bad_request(message: str, param: str | None = None) -> Response:
    """A 400 ``invalid_request_error`` as OpenAI-compatible servers send it."""
    return Response(status=400, error_message=message, error_type="invalid_request_error", error_param=param)


def check_envelope(body: Any, *, validate: bool) -> Response | None:
    """What every route checks first: a JSON object, and (when validating) a ``model``.

    None means "go on with the route's own checks"; ``validate=False`` skips them all.
    """
    if not isinstance(body, dict):
        return bad_request("The request body must be a JSON object.")
    if validate and not body.get("model"):
        return bad_request("you must provide a model parameter", "model")
    return None


def echo_responder(request: dict[str, Any]) -> Response:
    """Default reply: echo the last user message (so an unscripted call still answers)."""
    last = ""
    for msg in reversed(request.get("messages") or []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, list):  # content parts
                content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            last = str(content or "")
            break
    return Response(text=f"echo: {last}")


def load_script(path: str | Path) -> tuple[list[Response], dict[str, Any]]:
    """Read a script file: a JSON list of responses, or ``{"responses": [...], "model": ...}``.

    Returns the responses and the remaining top-level options.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(data, list):
        return [Response.from_dict(item) for item in data], {}
    if not isinstance(data, dict):
        raise ValueError("a script must be a JSON list of responses or an object with 'responses'")
    options = {k: v for k, v in data.items() if k != "responses"}
    return [Response.from_dict(item) for item in data.get("responses", [])], options


# -- OpenAI wire shapes ------------------------------------------------------------------------

def estimate_tokens(value: Any) -> int:
    """Rough token count (4 characters a token) for usage figures."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return max(1, len(text) // 4) if text else 0


def compute_usage(response: Response, request: dict[str, Any]) -> dict[str, int]:
    if response.usage is not None:
        usage = dict(response.usage)
        usage.setdefault("total_tokens", usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0))
        return usage
    prompt = estimate_tokens(request.get("messages") or [])
    completion = len(response.content_tokens()) + sum(
        estimate_tokens(tc.arguments_json()) + 1 for tc in response.tool_calls
    )
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class ChunkWriter:
    """Encodes ``chat.completion.chunk`` SSE events for one stream (fast path for text tokens)."""

    def __init__(self, model: str, *, include_usage: bool) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        head = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": model, "system_fingerprint": None}
        self._head = json.dumps(head)[:-1]
        self._usage_tail = ',"usage":null}' if include_usage else "}"

    def event(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return f'data: {self._head},"choices":[{json.dumps(choice)}]{self._usage_tail}\n\n'.encode()

    def content(self, token: str) -> bytes:
        return (
            f'data: {self._head},"choices":[{{"index":0,"delta":{{"content":{json.dumps(token)}}},'
            f'"logprobs":null,"finish_reason":null}}]{self._usage_tail}\n\n'
        ).encode()

    def usage(self, usage: dict[str, int]) -> bytes:
        return f'data: {self._head},"choices":[],"usage":{json.dumps(usage)}}}\n\n'.encode()

    @staticmethod
    def error(body: dict[str, Any]) -> bytes:
        return f"data: {json.dumps(body)}\n\n".encode()

    @staticmethod
    def done() -> bytes:
        return b"data: [DONE]\n\n"


def tool_call_events(writer: ChunkWriter, response: Response) -> Iterable[bytes]:
    """Tool-call deltas as real servers send them: id + name first, then argument pieces."""
    piece = max(1, response.argument_chunk_chars)
    for index, (call_id, call) in enumerate(response.resolved_calls()):
        yield writer.event({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                            "function": {"name": call.name, "arguments": ""}}]})
        args = call.arguments_json()
        for start in range(0, len(args), piece):
            yield writer.event({"tool_calls": [{"index": index,
                                                "function": {"arguments": args[start:start + piece]}}]})


def completion_body(response: Response, request: dict[str, Any], model: str) -> dict[str, Any]:
    """A full (non-streaming) ``chat.completion`` object."""
    message: dict[str, Any] = {"role": "assistant", "content": "".join(response.content_tokens()) or None,
                               "refusal": None}
    if response.tool_calls:
        message["tool_calls"] = [
            {"id": call_id, "type": "function",
             "function": {"name": call.name, "arguments": call.arguments_json()}}
            for call_id, call in response.resolved_calls()
        ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": response.resolved_finish_reason()}],
        **({"usage": compute_usage(response, request)} if response.send_usage else {}),
    }
