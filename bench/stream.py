"""Streaming a long reply through the whole path, next to the seed's method, in one run.

Path measured (polaris): scripted model server → real ``jupyter server`` (openai client, tool
loop, coalesced deltas, SQLite store) → WebSocket subscriber in this process.
Seed method: the same stream consumed by a worker process that, every 100 ms, writes the
full accumulated text to SQLite and sends the full text to its WebSocket subscriber.

Reported: reply bytes, bytes to the subscriber, bytes written to the store, updates, lag
p50/p99 between a token leaving the model server and reaching the subscriber, CPU seconds of
the serving process; and the lag again with a 50-cell notebook attached as context (the
message carries a ``notebook`` item: the server reads, renders and budgets it before the
turn, ``bench/context_block.py`` builds the notebook). The last line is one JSON object.

    python bench/stream.py --tokens 8000 --tokens-per-s 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.context_block import make_notebook  # noqa: E402
from polaris_jupyter.testing import Response, ScriptedModelServer, lorem_tokens  # noqa: E402
from tests.live_server import LiveServer  # noqa: E402

WINDOW_S = 0.1


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def lag_ms(token_times: list[float], token_offsets: list[int], frames: list[tuple[float, int]]) -> list[float]:
    """For each token: receive time of the first frame whose text reaches past the token's offset."""
    lags = []
    j = 0
    for sent, offset in zip(token_times, token_offsets, strict=True):
        while j < len(frames) and frames[j][1] <= offset:
            j += 1
        if j == len(frames):
            break
        lags.append((frames[j][0] - sent) * 1000)
    return lags


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run_polaris(model: ScriptedModelServer, tokens: list[str], tokens_per_s: float, workdir: Path,
                      context: dict[str, Any] | None = None) -> dict[str, Any]:
    root = workdir / "root"
    root.mkdir(parents=True, exist_ok=True)
    if context is not None:
        make_notebook(root / "analysis.ipynb")
    env = {
        "OPENAI_BASE_URL": model.base_url,
        "OPENAI_API_KEY": "sk-bench",
        "OPENAI_MODEL": "scripted",
        "POLARIS_PROVIDER": "openai",
        "POLARIS_STREAM_WINDOW_MS": str(int(WINDOW_S * 1000)),
    }
    server = LiveServer(root, workdir / "polaris.db", env=env).start()
    try:
        # Warm-up turn: the first turn imports the openai client and the tools (one-time cost).
        _, warm = server.request("POST", "/polaris/api/v1/conversations", {})
        model.enqueue(Response(text="ready"))
        _, accepted = server.request("POST", f"/polaris/api/v1/conversations/{warm['id']}/messages", {"content": "hi"})
        server.wait_run(accepted["runId"], {"COMPLETED"})
        _, conv = server.request("POST", "/polaris/api/v1/conversations", {})
        _, health = server.request("GET", "/polaris/api/v1/health")
        ws_url = f"ws://127.0.0.1:{server.port}/polaris/api/v1/events?conversation={conv['id']}&since={health['lastEventSeq']}"
        ws = await websocket_connect(HTTPRequest(ws_url, headers={"Authorization": f"token {server.token}"}))
        model.enqueue(Response(tokens=tokens, tokens_per_s=tokens_per_s))
        requests_before = len(model.requests)
        cpu_before = cpu_seconds(server.proc.pid)  # type: ignore[union-attr]
        body: dict[str, Any] = {"content": "Write a long answer."}
        if context is not None:
            body["context"] = context
        status, answer = server.request("POST", f"/polaris/api/v1/conversations/{conv['id']}/messages", body)
        assert status == 202, (status, answer)
        frames: list[tuple[float, int]] = []
        bytes_to_subscriber = 0
        updates = 0
        while True:
            raw = await asyncio.wait_for(ws.read_message(), 60)
            now = time.perf_counter()
            assert isinstance(raw, str)
            bytes_to_subscriber += len(raw.encode())
            event = json.loads(raw)
            if event["type"] == "message.delta":
                updates += 1
                frames.append((now, event["data"]["offset"] + len(event["data"]["delta"])))
            if event["type"] == "message.status" and event["data"]["status"] in ("completed", "failed"):
                break
        cpu = cpu_seconds(server.proc.pid) - cpu_before  # type: ignore[union-attr]
        ws.close()
        _, health_after = server.request("GET", "/polaris/api/v1/health")
        request = model.requests[requests_before]
        sent = json.dumps((request.body or {}).get("messages"))
        if context is not None:
            assert "analysis.ipynb" in sent, "the context did not reach the model"
        return {
            "request_chars": len(sent),
            "bytes_to_subscriber": bytes_to_subscriber,
            "store_bytes": health_after["storeBytesWritten"] - health["storeBytesWritten"],
            "updates": updates,
            "lags": lag_ms(request.token_times, request.token_offsets, frames),
            "cpu_s": cpu,
        }
    finally:
        server.stop()


SEED_WORKER = r'''
import asyncio, json, sqlite3, sys, time
import openai
from tornado.web import Application
from tornado.websocket import WebSocketHandler

DB = sys.argv[2]

class Socket(WebSocketHandler):
    async def on_message(self, message):
        base_url = json.loads(message)["baseUrl"]
        conn = sqlite3.connect(DB, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL"); conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE IF NOT EXISTS messages (id TEXT PRIMARY KEY, content TEXT)")
        conn.execute("INSERT OR REPLACE INTO messages VALUES ('m', '')")
        client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)
        stream = await client.chat.completions.create(model="scripted", messages=[{"role": "user", "content": "x"}], stream=True)
        text, last, store_bytes = "", 0.0, 0
        async def push():
            nonlocal store_bytes
            conn.execute("UPDATE messages SET content = ? WHERE id = 'm'", (text,))  # the seed: full text
            store_bytes += len(text)
            await self.write_message(json.dumps({"type": "message.update", "content": text}))
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
                if time.monotonic() - last >= 0.1:
                    last = time.monotonic()
                    await push()
        await push()
        await self.write_message(json.dumps({"type": "done", "storeBytes": store_bytes}))

async def main():
    app = Application([("/ws", Socket)])
    server = app.listen(0, "127.0.0.1")
    port = list(server._sockets.values())[0].getsockname()[1]
    print(port, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
'''


async def run_seed(model: ScriptedModelServer, tokens: list[str], tokens_per_s: float, workdir: Path) -> dict[str, Any]:
    script = workdir / "seed_worker.py"
    script.write_text(SEED_WORKER)
    proc = subprocess.Popen([sys.executable, str(script), "x", str(workdir / "seed.db")], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        ws = await websocket_connect(f"ws://127.0.0.1:{port}/ws")
        model.enqueue(Response(text="ready"))  # warm-up, as for polaris
        await ws.write_message(json.dumps({"baseUrl": model.base_url}))
        while json.loads(await asyncio.wait_for(ws.read_message(), 60) or "{}").get("type") != "done":
            pass
        model.enqueue(Response(tokens=tokens, tokens_per_s=tokens_per_s))
        requests_before = len(model.requests)
        cpu_before = cpu_seconds(proc.pid)
        await ws.write_message(json.dumps({"baseUrl": model.base_url}))
        frames: list[tuple[float, int]] = []
        bytes_to_subscriber = 0
        while True:
            raw = await asyncio.wait_for(ws.read_message(), 60)
            now = time.perf_counter()
            assert isinstance(raw, str)
            event = json.loads(raw)
            if event["type"] == "done":
                store_bytes = event["storeBytes"]
                break
            bytes_to_subscriber += len(raw.encode())
            frames.append((now, len(event["content"])))
        cpu = cpu_seconds(proc.pid) - cpu_before
        ws.close()
        request = model.requests[requests_before]
        return {
            "bytes_to_subscriber": bytes_to_subscriber,
            "store_bytes": store_bytes,
            "updates": len(frames),
            "lags": lag_ms(request.token_times, request.token_offsets, frames),
            "cpu_s": cpu,
        }
    finally:
        proc.kill()
        proc.wait()


async def main_async(args: argparse.Namespace) -> None:
    tokens = lorem_tokens(args.tokens)
    reply_bytes = len("".join(tokens).encode())
    model = ScriptedModelServer.start_in_thread()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ours = await run_polaris(model, tokens, args.tokens_per_s, Path(tmp) / "plain")
            seed = await run_seed(model, tokens, args.tokens_per_s, Path(tmp))
            with_context = await run_polaris(model, tokens, args.tokens_per_s, Path(tmp) / "context",
                                             {"items": [{"kind": "notebook", "path": "analysis.ipynb"}]})
    finally:
        model.stop()
    print(f"reply: {args.tokens} tokens, {reply_bytes:,} bytes at {args.tokens_per_s:,.0f} tokens/s")
    print(f"{'':26}{'polaris':>14}{'seed method':>14}{'ratio':>8}")
    for label, key, fmt in (
        ("bytes to subscriber", "bytes_to_subscriber", "{:,.0f}"),
        ("bytes to store", "store_bytes", "{:,.0f}"),
        ("updates", "updates", "{:,.0f}"),
        ("CPU seconds", "cpu_s", "{:.3f}"),
    ):
        a, b = ours[key], seed[key]
        print(f"{label:26}{fmt.format(a):>14}{fmt.format(b):>14}{(a / b if b else 0):>8.2f}")
    for name, result in (("polaris", ours), ("seed", seed)):
        lags = result["lags"]
        print(f"lag {name:8} p50 {pct(lags, 0.5):7.1f} ms   p99 {pct(lags, 0.99):7.1f} ms   (median {statistics.median(lags):.1f})")
    lags = with_context["lags"]
    print(f"lag polaris + 50-cell notebook context ({with_context['request_chars']:,} chars to the model, "
          f"{ours['request_chars']:,} without) p50 {pct(lags, 0.5):7.1f} ms   p99 {pct(lags, 0.99):7.1f} ms")
    print(
        f"targets: bytes to subscriber <= 1.2x reply ({ours['bytes_to_subscriber'] / reply_bytes:.2f}x), "
        f"lag p99 <= 150 ms ({pct(ours['lags'], 0.99):.0f}), CPU <= 0.5x seed ({ours['cpu_s'] / max(seed['cpu_s'], 1e-9):.2f}x)"
    )
    print(
        json.dumps(
            {
                "reply_bytes": reply_bytes,
                "bytes_to_subscriber": ours["bytes_to_subscriber"],
                "seed_bytes_to_subscriber": seed["bytes_to_subscriber"],
                "store_bytes": ours["store_bytes"],
                "seed_store_bytes": seed["store_bytes"],
                "updates": ours["updates"],
                "seed_updates": seed["updates"],
                "lag_p50_ms": round(pct(ours["lags"], 0.5), 1),
                "lag_p99_ms": round(pct(ours["lags"], 0.99), 1),
                "seed_lag_p50_ms": round(pct(seed["lags"], 0.5), 1),
                "seed_lag_p99_ms": round(pct(seed["lags"], 0.99), 1),
                "cpu_s": round(ours["cpu_s"], 3),
                "seed_cpu_s": round(seed["cpu_s"], 3),
                "context_request_chars": with_context["request_chars"],
                "context_lag_p50_ms": round(pct(with_context["lags"], 0.5), 1),
                "context_lag_p99_ms": round(pct(with_context["lags"], 0.99), 1),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=8000)
    parser.add_argument("--tokens-per-s", type=float, default=2000)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
