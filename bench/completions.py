"""Inline completions: what the product adds to a suggestion's latency, next to a bare client, in one run.

The scripted model runs in its own process (no GIL shared with the product) with a fixed time
to first token; its timestamps (request received, first token flushed, connection gone) come
back over a pipe and share our clock (``perf_counter`` is CLOCK_MONOTONIC on Linux). Per request:

    overhead = (first suggestion piece out - request in) - (model's first token sent - model's request in)

i.e. everything but the model's own thinking time: building the prompt, the HTTP round trip,
reading SSE, trimming, handing the piece over. Measured for

* the product at the service level (``CompletionService.complete`` → first piece of the handle),
* the peer: a bare ``openai`` client streaming ``/completions`` from the same server (the SDK
  with a pydantic object per chunk, no prompt building, no trimming, no cancellation),
* with ``--http``, the route ``POST /polaris/api/v1/completions`` of a real ``jupyter server``
  (first NDJSON ``delta`` line), once the route exists (it is skipped with a note until then).

Also: the time from a superseding request until the scripted server sees the old stream's
connection close (peer: ``stream.close()`` on the bare client), a cache hit, and with the
bundled llama.cpp model the end-to-end time of a 20-token suggestion (peer: the bare client's
20-token completion). The last line is one JSON object.

    python bench/completions.py --n 200 --ttft-ms 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import openai  # noqa: E402

from polaris_jupyter.agent import ProviderChain, ProviderConfig  # noqa: E402
from polaris_jupyter.agent.completions import CompletionRequest, CompletionService, CompletionSettings  # noqa: E402
from polaris_jupyter.testing import Response, ScriptedModelServer  # noqa: E402
from polaris_jupyter.testing._completion_handler import completion_requests  # noqa: E402

ROUTE = "/polaris/api/v1/completions"
SLOW_MARK = "slow_stream"
FirstPiece = Callable[[int], Awaitable[float]]  # request number -> time of the first piece (perf_counter)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def responder(ttft_s: float) -> Callable[[dict[str, Any]], Response]:
    tokens = [" compute", "(a", ", b", ")", " +", " 1", "\n"]

    def answer(body: dict[str, Any]) -> Response:
        if SLOW_MARK in str(body.get("prompt", "")):
            return Response(tokens=[" x"] * 2000, delay_s=0.02)
        return Response(tokens=tokens, ttft_s=ttft_s, delay_s=0.001)

    return answer


def _serve(conn: Any, ttft_s: float) -> None:
    """In the child process: the scripted server; each finished request's times go to ``conn``."""
    async def run() -> None:
        async with ScriptedModelServer(responder=responder(ttft_s), model="scripted") as server:
            conn.send(server.base_url)
            reported = 0
            while not conn.poll():
                for rec in completion_requests(server)[reported:]:
                    if not rec.finished:
                        break
                    conn.send({"prompt": (rec.body or {}).get("prompt"), "received_at": rec.received_at,
                               "first_token_at": rec.token_times[0] if rec.token_times else None,
                               "finished_at": rec.finished_at, "client_disconnected": rec.client_disconnected})
                    reported += 1
                await asyncio.sleep(0.001)
    asyncio.run(run())


class RemoteModel:
    """The scripted server in a child process, and the times it reports per request (by prompt)."""

    def __init__(self, ttft_s: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(child, ttft_s), daemon=True)
        self._process.start()
        self.base_url: str = self._conn.recv()
        self._records: dict[str, dict[str, Any]] = {}

    async def record(self, prompt: str) -> dict[str, Any]:
        while prompt not in self._records:
            if not await asyncio.to_thread(self._conn.poll, 10.0):
                raise TimeoutError(f"the scripted server never finished the request {prompt!r}")
            rec = self._conn.recv()
            self._records[rec["prompt"]] = rec
        return self._records.pop(prompt)

    def model_time_s(self, rec: dict[str, Any]) -> float:
        """The model's own time: from receiving the request to flushing the first token."""
        return float(rec["first_token_at"] - rec["received_at"])

    def stop(self) -> None:
        self._conn.send("stop")
        self._process.join(10)


def prompt_of(i: int) -> str:
    return f"value_{i} ="


async def measure(first_piece: FirstPiece, model: RemoteModel, n: int, offset: int,
                  totals: list[float] | None = None, model_ms: list[float] | None = None) -> list[float]:
    """Overhead (ms) of ``n`` sequential requests, each a new prompt (no cache); ``totals`` gets
    the whole time to the first piece, ``model_ms`` the model's own time."""
    out = []
    for i in range(offset, offset + n):
        started = time.perf_counter()
        first = await first_piece(i)
        model_s = model.model_time_s(await model.record(prompt_of(i)))
        out.append(((first - started) - model_s) * 1000)
        if totals is not None:
            totals.append((first - started) * 1000)
        if model_ms is not None:
            model_ms.append(model_s * 1000)
    return out


def service_target(service: CompletionService) -> FirstPiece:
    async def first_piece(i: int) -> float:
        handle = service.complete(CompletionRequest(prefix=prompt_of(i), editor_id=f"bench-{i % 8}"))
        at = None
        async for _piece in handle:  # read to the end, so the connection is kept alive for the next
            at = at or time.perf_counter()
        if at is None:
            raise RuntimeError(f"no suggestion: {handle.to_json()}")
        return at
    return first_piece


def peer_target(client: openai.AsyncOpenAI) -> FirstPiece:
    async def first_piece(i: int) -> float:
        stream = await client.completions.create(model="scripted", prompt=prompt_of(i), suffix="",
                                                 max_tokens=96, stream=True)
        at = None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].text:
                at = at or time.perf_counter()
        if at is None:
            raise RuntimeError("no text from the bare client")
        return at
    return first_piece


def http_target(url: str, token: str) -> tuple[FirstPiece, Callable[[], Awaitable[None]]]:
    """The lead's route: NDJSON lines, the first ``delta`` is the first suggestion piece."""
    import httpx

    client = httpx.AsyncClient(base_url=url, headers={"Authorization": f"token {token}"}, timeout=30)

    async def first_piece(i: int) -> float:
        body = {"prefix": prompt_of(i), "editorId": f"bench-http-{i % 8}"}
        async with client.stream("POST", ROUTE, json=body) as response:
            if response.status_code == 404:
                raise RuntimeError(f"{ROUTE} is not there yet (404)")
            if response.status_code != 200:
                raise RuntimeError(f"{ROUTE} answered {response.status_code}: {(await response.aread())[:200]!r}")
            at = None
            async for line in response.aiter_lines():
                if line and json.loads(line).get("type") == "delta":
                    at = at or time.perf_counter()
        if at is None:
            raise RuntimeError("no delta line")
        return at

    return first_piece, client.aclose


async def closed_after_ms(model: RemoteModel, prompt: str, started: float) -> float:
    """From ``started`` until the scripted server saw the stream's connection go."""
    rec = await model.record(prompt)
    assert rec["client_disconnected"], f"the stream of {prompt!r} was not dropped"
    return float(rec["finished_at"] - started) * 1000


async def cancel_trials(service: CompletionService, client: openai.AsyncOpenAI, model: RemoteModel,
                        trials: int) -> tuple[list[float], list[float]]:
    ours, peer = [], []
    for i in range(trials):
        slow = f"{SLOW_MARK}_{i} ="
        old = service.complete(CompletionRequest(prefix=slow, editor_id="bench-cancel"))
        pieces = old.__aiter__()
        await pieces.__anext__()
        started = time.perf_counter()
        new = service.complete(CompletionRequest(prefix=prompt_of(-1 - i), editor_id="bench-cancel"))
        await old.wait()  # like the peer's ``await stream.close()``: then ask the server when it saw it
        ours.append(await closed_after_ms(model, slow, started))
        async for _ in new:
            pass
        await model.record(prompt_of(-1 - i))
        stream = await client.completions.create(model="scripted", prompt=f"{SLOW_MARK}_peer_{i}", stream=True)
        async for _chunk in stream:
            break
        started = time.perf_counter()
        await stream.close()
        peer.append(await closed_after_ms(model, f"{SLOW_MARK}_peer_{i}", started))
    return ours, peer


async def cache_hits(service: CompletionService, n: int) -> list[float]:
    request = CompletionRequest(prefix="cached_value =", editor_id="bench-cache")
    async for _ in service.complete(request):
        pass
    out = []
    for _ in range(n):
        started = time.perf_counter()
        handle = service.complete(request)
        async for _piece in handle:
            out.append((time.perf_counter() - started) * 1000)
            break
        assert handle.cached
    return out


async def bundled(trials: int) -> dict[str, Any] | None:
    """A 20-token suggestion from the bundled model, through the service and through a bare client."""
    from polaris_jupyter.agent.local_model import bundled_model_available, get_local_model_server

    if not bundled_model_available():
        return None
    chain = ProviderChain([ProviderConfig("bundled", "", "", bundled=True, read_timeout_s=300.0)])
    service = CompletionService(chain, CompletionSettings(max_lines=64))
    server = get_local_model_server()
    # Each call its own prompt (from the second token on), so no call reuses another's KV cache.
    prompts = [(f"PRIMES_{k}a = [\n    2, 3, 5, 7, 11,", f"PRIMES_{k}b = [\n    2, 3, 5, 7, 11,") for k in range(trials)]
    try:
        async for _ in service.complete(CompletionRequest(prefix="warm_up = [", max_tokens=4)):
            pass
        ours, texts = [], []
        async with openai.AsyncOpenAI(base_url=await server.ensure_started(), api_key="x", max_retries=0) as c:
            peer, tokens = [], []
            for mine, theirs in prompts:
                started = time.perf_counter()
                handle = service.complete(CompletionRequest(prefix=mine, max_tokens=20))
                texts.append("".join([p async for p in handle]))
                ours.append(time.perf_counter() - started)
                started = time.perf_counter()
                answer = await c.completions.create(model=server.model_name, prompt=theirs, max_tokens=20,
                                                    temperature=0)
                peer.append(time.perf_counter() - started)
                tokens.append(answer.usage.completion_tokens if answer.usage else None)
        return {"ours_s": statistics.median(ours), "peer_s": statistics.median(peer), "peer_tokens": tokens,
                "text": texts[0]}
    finally:
        await service.stop()
        await chain.aclose()
        await server.stop()


async def http_overhead(model: RemoteModel, n: int) -> list[float] | str:
    from tests.live_server import LiveServer

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        env = {"OPENAI_BASE_URL": model.base_url, "OPENAI_API_KEY": "sk-bench", "OPENAI_MODEL": "scripted",
               "POLARIS_PROVIDER": "openai"}
        server = LiveServer(root, Path(tmp) / "polaris.db", env=env).start()
        first_piece, close = http_target(server.url, server.token)
        try:
            try:
                await first_piece(-100_000)
            except RuntimeError as exc:
                return f"skipped: {exc}"
            await model.record(prompt_of(-100_000))
            await measure(first_piece, model, 10, 10_000)  # warm-up
            return await measure(first_piece, model, n, 20_000)
        finally:
            await close()
            server.stop()


def row(name: str, ours: list[float], peer: list[float] | None, unit: str = "ms") -> None:
    def fig(values: list[float] | None, q: float) -> str:
        return "-" if not values else f"{pct(values, q):8.2f}"
    print(f"{name:<34} p50 {fig(ours, 0.5)} p99 {fig(ours, 0.99)} {unit}   |  peer p50 {fig(peer, 0.5)} "
          f"p99 {fig(peer, 0.99)} {unit}")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    ttft_s = args.ttft_ms / 1000
    model = RemoteModel(ttft_s)
    chain = ProviderChain([ProviderConfig("openai", model.base_url, "scripted")])
    service = CompletionService(chain, CompletionSettings(cache_ttl_s=3600, cache_size=4096))
    client = openai.AsyncOpenAI(base_url=model.base_url, api_key="x", max_retries=0)
    try:
        ours_target, peer_target_ = service_target(service), peer_target(client)
        await measure(ours_target, model, 10, 0)  # warm-up: clients, connections, imports
        await measure(peer_target_, model, 10, 100)
        ours: list[float] = []
        peer: list[float] = []
        peer_total: list[float] = []
        model_ms: list[float] = []
        for block in range(0, args.n, 20):  # interleaved, so both see the same machine load
            ours += await measure(ours_target, model, min(20, args.n - block), 1000 + block, model_ms=model_ms)
            peer += await measure(peer_target_, model, min(20, args.n - block), 5000 + block, peer_total)
        print(f"scripted model: time to first token {args.ttft_ms} ms (measured p50 {pct(model_ms, 0.5):.2f} ms); "
              f"{args.n} requests each")
        row("overhead, service level", ours, peer)
        http: list[float] | str = "not run (--http)"
        if args.http:
            http = await http_overhead(model, args.n)
            if isinstance(http, list):
                row("overhead, HTTP route", http, peer)
        if isinstance(http, str):
            print(f"overhead, HTTP route: {http}")
        cancel, peer_cancel = await cancel_trials(service, client, model, args.cancel_trials)
        row("cancel → model stream closed", cancel, peer_cancel)
        hits = await cache_hits(service, args.cache_n)
        row("cache hit → first piece", hits, peer_total)
        print(f"{'':<34} (peer: the bare client's whole time to its first token, model included)")
        b = None if args.no_bundled else await bundled(args.bundled_trials)
        if b is None:
            print("bundled model: not installed (pip install 'polaris-jupyter[local]')" if not args.no_bundled
                  else "bundled model: skipped (--no-bundled)")
        else:
            print(f"bundled model, 20-token suggestion: {b['ours_s']:.2f} s  |  peer (bare client, 20 tokens, "
                  f"{b['peer_tokens']} tokens): {b['peer_s']:.2f} s   e.g. {b['text']!r}")
        return {
            "overhead_p50_ms": round(pct(ours, 0.5), 3), "overhead_p99_ms": round(pct(ours, 0.99), 3),
            "cancel_ms": round(max(cancel), 3), "cache_hit_p50_ms": round(pct(hits, 0.5), 3),
            "bundled_20_tokens_s": None if b is None else round(b["ours_s"], 3),
            "peer_overhead_p50_ms": round(pct(peer, 0.5), 3), "peer_overhead_p99_ms": round(pct(peer, 0.99), 3),
            "peer_cancel_ms": round(max(peer_cancel), 3),
            "peer_bundled_20_tokens_s": None if b is None else round(b["peer_s"], 3),
            "http_overhead_p50_ms": round(pct(http, 0.5), 3) if isinstance(http, list) else None,
            "http_overhead_p99_ms": round(pct(http, 0.99), 3) if isinstance(http, list) else None,
            "ttft_ms": args.ttft_ms, "n": args.n,
        }
    finally:
        await service.stop()
        await chain.aclose()
        await client.close()
        model.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="requests per target for the overhead figures")
    parser.add_argument("--ttft-ms", type=float, default=50.0, help="the scripted model's time to first token")
    parser.add_argument("--cancel-trials", type=int, default=20)
    parser.add_argument("--cache-n", type=int, default=500)
    parser.add_argument("--bundled-trials", type=int, default=3)
    parser.add_argument("--no-bundled", action="store_true", help="skip the bundled llama.cpp model")
    parser.add_argument("--http", action="store_true", help=f"also measure {ROUTE} on a real jupyter server")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
