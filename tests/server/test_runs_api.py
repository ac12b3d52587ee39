"""The runs REST API and the event WebSocket, on a real Jupyter server."""

from __future__ import annotations

import asyncio
import json
import os
import re
from typing import Any

from tornado.httpclient import HTTPClientError
from tornado.websocket import WebSocketHandler

from polaris_jupyter.api import openapi_document
from tests.helpers import async_wait_until, read_events
from tests.helpers import rest as call

API = ("polaris", "api", "v1")


async def wait_status(jp_fetch: Any, run_id: str, wanted: set[str], timeout_s: float = 10) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        _, run = await call(jp_fetch, "runs", run_id)
        return run if run["status"] in wanted else None

    return await async_wait_until(reached, timeout_s, f"run {run_id} in {sorted(wanted)}")


async def test_trigger_get_and_list(jp_fetch: Any, polaris: Any) -> None:
    status, tasks = await call(jp_fetch, "tasks")
    ids = {t["id"] for t in tasks["tasks"]}
    assert {"test-echo", "test-sleep", "cleanup"} <= ids
    status, body = await call(
        jp_fetch,
        "tasks",
        "test-echo",
        "trigger",
        method="POST",
        body={"payload": {"hello": "world"}, "options": {"tags": ["t1"], "metadata": {"a": 1}}},
    )
    assert status == 200 and body["id"].startswith("run_")
    run = await wait_status(jp_fetch, body["id"], {"COMPLETED"})
    assert run["output"] == {"hello": "world"}
    assert run["metadata"] == {"a": 1, "echoed": True}
    assert run["attempts"][0]["status"] == "COMPLETED"
    assert run["logs"][0]["message"] == "echoing"
    for _ in range(3):
        await call(jp_fetch, "tasks", "test-echo", "trigger", method="POST", body={"payload": 1})
    _, page = await call(jp_fetch, "runs", params={"limit": "2", "task": "test-echo"})
    assert len(page["data"]) == 2 and page["nextCursor"]
    _, page2 = await call(jp_fetch, "runs", params={"limit": "2", "task": "test-echo", "cursor": page["nextCursor"]})
    ids_seen = [r["id"] for r in page["data"] + page2["data"]]
    assert len(set(ids_seen)) == 4
    _, tagged = await call(jp_fetch, "runs", params={"tag": "t1"})
    assert [r["id"] for r in tagged["data"]] == [body["id"]]
    _, events = await call(jp_fetch, "runs", body["id"], "events", params={"since": "0"})
    types = [e["type"] for e in events["events"]]
    assert types[0] == "run.status" and "run.log" in types
    _, later = await call(jp_fetch, "runs", body["id"], "events", params={"since": str(events["lastSeq"] - 1)})
    assert len(later["events"]) == 1
    _, metrics = await call(jp_fetch, "metrics")
    echo = next(m for m in metrics["tasks"] if m["taskId"] == "test-echo")
    assert echo["total"] == 4


async def test_batch_idempotency_and_delay(jp_fetch: Any, polaris: Any) -> None:
    status, batch = await call(
        jp_fetch, "tasks", "test-echo", "batch", method="POST", body={"items": [{"payload": i} for i in range(20)]}
    )
    assert status == 200 and len(batch["runs"]) == 20
    opts = {"idempotencyKey": "k-1"}
    _, a = await call(jp_fetch, "tasks", "test-echo", "trigger", method="POST", body={"payload": 1, "options": opts})
    _, b = await call(jp_fetch, "tasks", "test-echo", "trigger", method="POST", body={"payload": 1, "options": opts})
    assert a["id"] == b["id"] and b["isCached"]
    _, delayed = await call(jp_fetch, "tasks", "test-echo", "trigger", method="POST", body={"options": {"delay": "1h"}})
    _, run = await call(jp_fetch, "runs", delayed["id"])
    assert run["status"] == "DELAYED" and run["delayUntil"]


async def test_cancel_and_replay(jp_fetch: Any, polaris: Any) -> None:
    _, body = await call(jp_fetch, "tasks", "test-sleep", "trigger", method="POST", body={"payload": {"s": 3600}})
    await wait_status(jp_fetch, body["id"], {"EXECUTING"})
    status, run = await call(jp_fetch, "runs", body["id"], "cancel", method="POST")
    assert status == 200 and run["status"] == "CANCELED"
    assert polaris.engine._executing == 0
    status, replay = await call(jp_fetch, "runs", body["id"], "replay", method="POST", body={})
    assert status == 200 and replay["id"] != body["id"]
    _, replayed = await call(jp_fetch, "runs", replay["id"])
    assert replayed["replayedFrom"] == body["id"] and replayed["payload"] == {"s": 3600}
    await call(jp_fetch, "runs", replay["id"], "cancel", method="POST")


async def test_bad_input_gets_clear_4xx(jp_fetch: Any, polaris: Any) -> None:
    cases: list[tuple[tuple[str, ...], dict[str, Any], int, str]] = [
        (("tasks", "nope", "trigger"), {"body": {}}, 404, "no task"),
        (("tasks", "test-echo", "trigger"), {"raw": b"{not json"}, 400, "not valid JSON"),
        (("tasks", "test-echo", "trigger"), {"raw": b"[1,2]"}, 400, "JSON object"),
        (("tasks", "test-echo", "trigger"), {"body": {"options": {"bogus": 1}}}, 400, "unknown option"),
        (("tasks", "test-echo", "trigger"), {"body": {"options": {"delay": "soon"}}}, 400, "delay"),
        (("tasks", "test-echo", "trigger"), {"body": {"options": {"tags": [1]}}}, 400, "tags"),
        (("tasks", "test-echo", "trigger"), {"body": {"options": {"ttl": 0}}}, 400, "ttl"),
        (("tasks", "test-echo", "trigger"), {"body": {"payload": "x" * (4 * 1024 * 1024)}}, 400, "limit"),
        (("tasks", "test-echo", "trigger"), {"raw": b"{" + b" " * (9 * 1024 * 1024) + b"}"}, 413, "limit"),
        (("tasks", "test-echo", "batch"), {"body": {"items": []}}, 400, "items"),
        (("tasks", "test-echo", "batch"), {"body": {"items": [{}] * 1001}}, 400, "at most 1000"),
        (("runs", "run_missing", "cancel"), {"body": {}}, 404, "no run"),
        (("runs", "run_missing", "replay"), {"body": {}}, 404, "no run"),
        (("schedules",), {"body": {"task": "test-echo", "cron": "bad"}}, 400, "cron"),
    ]
    for path, kw, code, text in cases:
        status, body = await call(jp_fetch, *path, method="POST", **kw)
        assert status == code, (path, kw.keys(), status, body)
        assert text.lower() in body["message"].lower(), (path, body)
    for path, params, code in [
        (("runs", "run_missing"), {}, 404),
        (("runs", "run_missing", "events"), {}, 404),
        (("runs",), {"status": "SLEEPING"}, 400),
        (("runs",), {"limit": "0"}, 400),
        (("runs",), {"cursor": "abc"}, 400),
    ]:
        status, body = await call(jp_fetch, *path, params=params)
        assert status == code and body["message"], (path, body)


async def test_every_route_needs_auth(jp_fetch: Any, polaris: Any) -> None:
    doc = openapi_document()
    for path, ops in doc["paths"].items():
        parts = [p if not p.startswith("{") else "x" for p in path.strip("/").split("/")]
        for method in ops:
            try:
                await jp_fetch(*parts, method=method.upper(), headers={"Authorization": ""}, allow_nonstandard_methods=True, body=None if method in ("get", "delete") else b"{}")
            except HTTPClientError as exc:
                assert exc.code == 403, (method, path, exc.code)
            else:
                raise AssertionError(f"{method} {path} answered without auth")


async def test_internal_key_and_environment(jp_fetch: Any, polaris: Any) -> None:
    key = os.environ["POLARIS_TOKEN"]
    assert os.environ["POLARIS_URL"].startswith("http")
    status, body = await call(
        jp_fetch, "tasks", "test-echo", "trigger", method="POST", body={"payload": 7}, headers={"Authorization": f"Bearer {key}"}
    )
    assert status == 200
    status, _ = await call(
        jp_fetch, "tasks", "test-echo", "trigger", method="POST", body={"payload": 7}, headers={"Authorization": "Bearer wrong"}
    )
    assert status == 403


async def test_openapi_describes_every_route(jp_fetch: Any, jp_serverapp: Any, polaris: Any) -> None:
    """The live router and the served document list the same /polaris/ routes and methods."""
    response = await jp_fetch("polaris", "api", "openapi.json")
    doc = json.loads(response.body)
    assert doc["openapi"].startswith("3.1")
    described = {(_template(path), method) for path, ops in doc["paths"].items() for method in ops}
    live = set()
    app = jp_serverapp.web_app
    rules = [*app.wildcard_router.rules, *(r for host in app.default_router.rules for r in getattr(host.target, "rules", []))]
    for rule in rules:
        pattern = getattr(rule.matcher, "regex", None)
        if pattern is None or "/polaris/" not in pattern.pattern:
            continue
        handler = rule.target
        if issubclass(handler, WebSocketHandler):
            methods = ["get"]
        else:
            methods = [m for m in ("get", "post", "put", "patch", "delete") if m in vars(handler)]
        path = "/polaris/" + pattern.pattern.split("/polaris/", 1)[1].rstrip("$")
        live |= {(re.sub(r"\(\?P<\w+>\[\^/\]\+\)", "{}", path), m) for m in methods}
    assert live == described, (live ^ described)


def _template(path: str) -> str:
    return re.sub(r"\{\w+\}", "{}", path)


async def test_websocket_streams_and_resumes(jp_fetch: Any, jp_ws_fetch: Any, polaris: Any) -> None:
    start = polaris.engine.bus.last_seq
    ws = await jp_ws_fetch(*API, "events", params={"since": str(start)})
    _, body = await call(jp_fetch, "tasks", "test-echo", "trigger", method="POST", body={"payload": "ws"})
    seen = await read_events(ws, lambda e: e["type"] == "run.status" and e["data"]["status"] == "COMPLETED", 5)
    ws.close()
    assert all(e["runId"] == body["id"] for e in seen)
    seqs = [e["seq"] for e in seen]
    assert seqs == list(range(start + 1, start + 1 + len(seqs)))
    # Reconnect from the middle, filtered to the run: exactly the rest, no gaps or duplicates.
    middle = seqs[1]
    ws2 = await jp_ws_fetch(*API, "events", params={"since": str(middle), "run": body["id"]})
    rest = [json.loads(await asyncio.wait_for(ws2.read_message(), 5)) for _ in range(len(seqs) - 2)]
    ws2.close()
    assert [e["seq"] for e in rest] == seqs[2:]


async def test_schedules_api(jp_fetch: Any, polaris: Any) -> None:
    status, created = await call(
        jp_fetch, "schedules", method="POST", body={"task": "test-echo", "cron": "0 9 * * 1", "timezone": "Europe/Paris"}
    )
    assert status == 201 and created["nextRun"]
    _, listing = await call(jp_fetch, "schedules")
    ids = {s["id"] for s in listing["data"]}
    assert created["id"] in ids and "cleanup-daily" in ids
    response = await jp_fetch(*API, "schedules", created["id"], method="DELETE")
    assert response.code == 204
    status, _ = await call(jp_fetch, "schedules", created["id"], method="DELETE")
    assert status == 404
