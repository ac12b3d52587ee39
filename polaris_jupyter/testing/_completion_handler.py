"""``POST /v1/completions`` (text completions, fill-in-the-middle) for the scripted server.

Takes the next scripted :class:`Response` like the chat route (same queue, same responder; the
responder can tell the two apart: a completions body has ``prompt`` and no ``messages``), and
answers as llama.cpp, vLLM and Ollama do: ``text_completion`` objects, streamed as SSE when
``stream`` is true. It honours ``max_tokens`` (finish reason ``length``) and ``stop`` (the text
is cut before the first stop sequence), paces tokens like the chat route (``ttft_s``, then
``delay_s`` / ``tokens_per_s`` on an absolute schedule) and records the request with
``suffix``, the tokens sent with their send times, and whether the client went away early.
Error replies (``status`` >= 400, proxy pages, ``Retry-After``) are the chat route's.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from polaris_jupyter.testing._chat_handler import ChatCompletionsHandler, _Gone
from polaris_jupyter.testing._script import Response, bad_request, check_envelope, estimate_tokens

if TYPE_CHECKING:
    from polaris_jupyter.testing._server import RecordedRequest, ScriptedModelServer

__all__ = ["COMPLETIONS_PATH", "TextCompletionsHandler", "completion_requests", "validate_completion_request"]

COMPLETIONS_PATH = "/v1/completions"


def completion_requests(server: ScriptedModelServer) -> list[RecordedRequest]:
    """The ``/v1/completions`` requests a server recorded, in arrival order."""
    return [r for r in list(server.requests) if r.path == COMPLETIONS_PATH]


def validate_completion_request(body: Any, server: ScriptedModelServer) -> Response | None:
    """The checks a real server makes on a completions body; None when it is fine."""
    envelope = check_envelope(body, validate=server.validate)
    if envelope is not None or not server.validate:
        return envelope
    prompt = body.get("prompt")
    if not isinstance(prompt, str) and not (isinstance(prompt, list) and all(isinstance(p, str) for p in prompt)):
        return bad_request("'prompt' must be a string or an array of strings.", "prompt")
    if "suffix" in body and body["suffix"] is not None and not isinstance(body["suffix"], str):
        return bad_request("'suffix' must be a string.", "suffix")
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        return bad_request("'max_tokens' must be a positive integer.", "max_tokens")
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
            isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop)):
        return bad_request("'stop' must be a string or an array of at most 4 strings.", "stop")
    return None


def _planned_tokens(response: Response, body: dict[str, Any]) -> tuple[list[str], str]:
    """The tokens a real server would send for this body, and the finish reason."""
    tokens = response.content_tokens()
    finish = response.finish_reason or "stop"
    stops = body.get("stop")
    stops = [stops] if isinstance(stops, str) else [s for s in stops or [] if s]
    text = "".join(tokens)
    cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
    if cuts:
        keep, out = min(cuts), []
        for token in tokens:
            if keep <= 0:
                break
            out.append(token[:keep])
            keep -= len(token)
        tokens, finish = out, "stop"
    limit = body.get("max_tokens")
    if isinstance(limit, int) and len(tokens) > limit:
        tokens, finish = tokens[:limit], "length"
    return tokens, finish


class _TextChunks:
    """Encodes ``text_completion`` events for one answer."""

    def __init__(self, model: str) -> None:
        head = {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion",
                "created": int(time.time()), "model": model}
        self.head = head
        self._head = json.dumps(head)[:-1]

    def text(self, token: str, finish_reason: str | None = None) -> bytes:
        choice = {"text": token, "index": 0, "logprobs": None, "finish_reason": finish_reason}
        return f'data: {self._head},"choices":[{json.dumps(choice)}]}}\n\n'.encode()

    def usage(self, usage: dict[str, int]) -> bytes:
        return f'data: {self._head},"choices":[],"usage":{json.dumps(usage)}}}\n\n'.encode()


def _usage(response: Response, body: dict[str, Any], completion_tokens: int) -> dict[str, int]:
    if response.usage is not None:
        return dict(response.usage)
    prompt = estimate_tokens(str(body.get("prompt") or "") + str(body.get("suffix") or ""))
    return {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens}


class TextCompletionsHandler(ChatCompletionsHandler):
    """Serves one text-completions request from the server's script."""

    async def post(self) -> None:
        try:
            body: Any = json.loads(self.request.body or b"null")
        except ValueError:
            body = None
        rec = self.server.record(self.request, body if isinstance(body, dict) else None)
        self._rec = rec
        self.server._active.add(self)
        try:
            response = self._check_auth() or validate_completion_request(body, self.server)
            if response is None:
                response = await self.server.next_response(body, route="completions")
            rec.response = response
            if response.is_error:
                await self._serve(rec, response, body)  # the chat route's error answers
            else:
                await self._answer(rec, response, body)
        except _Gone:
            if not self._finished:
                self.detach().close()
        finally:
            self._done = True
            self.server._active.discard(self)
            rec.finished_at = time.perf_counter()
            rec._finished.set()

    async def _answer(self, rec: RecordedRequest, response: Response, body: dict[str, Any]) -> None:
        rec.status = response.status
        for name, value in response.headers.items():
            self.set_header(name, value)
        tokens, finish = _planned_tokens(response, body)
        if response.disconnect_after_tokens is not None:
            tokens = tokens[: response.disconnect_after_tokens]
        elif response.error_after_tokens is not None:
            tokens = tokens[: response.error_after_tokens]
        chunks = _TextChunks(self.server.model)
        if not rec.stream:
            await self._pause(response.ttft_s + len(tokens) * response.token_interval_s())
            if response.disconnect_after_tokens is not None:
                self._drop_connection(rec)
            self.set_header("Content-Type", "application/json")
            choice = {"text": "".join(tokens), "index": 0, "logprobs": None, "finish_reason": finish}
            answer = {**chunks.head, "choices": [choice]}
            if response.send_usage:
                answer["usage"] = _usage(response, body, len(tokens))
            rec.tokens_sent = len(tokens)
            rec.completed = True  # before the bytes leave: see _send_last
            self.finish(json.dumps(answer))
            return
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        await self._pause(response.ttft_s)
        interval_s = response.token_interval_s()
        t0 = time.perf_counter()
        sent = offset = 0
        while sent < len(tokens):
            now = time.perf_counter()
            due = len(tokens) if interval_s <= 0 else min(len(tokens), int((now - t0) / interval_s) + 1)
            if due <= sent:
                await self._pause(t0 + sent * interval_s - now)
                continue
            await self._send(b"".join(chunks.text(t) for t in tokens[sent:due]))
            sent_at = time.perf_counter()
            for token in tokens[sent:due]:
                rec.token_times.append(sent_at)
                rec.token_offsets.append(offset)
                self.server.token_sent_times.append(sent_at)
                offset += len(token)
            rec.tokens_sent = sent = due
        if response.disconnect_after_tokens is not None:
            self._drop_connection(rec)
        if response.error_after_tokens is not None:
            message = response.error_message or "The model server failed while generating."
            await self._send(f"data: {json.dumps(Response.error(500, message).error_body())}\n\n".encode())
            self._done = True
            self.finish()
            return
        tail = chunks.text("", finish)
        options = body.get("stream_options") or {}
        if options.get("include_usage") and response.send_usage:
            tail += chunks.usage(_usage(response, body, len(tokens)))
        await self._send_last(rec, tail + b"data: [DONE]\n\n")
        self.finish()
