"""Throughput and latency of durable runs, next to a floor and a peer, measured in one run.

- polaris: N no-op runs through the engine with the SQLite store (durable: every trigger waits
  for its commit), triggered concurrently one by one, and in batches of 1,000.
- floor: N bare asyncio tasks, each doing one SQLite insert + update and a commit.
- peer: huey with its SQLite storage running the same no-op jobs on a thread consumer.
- latency: trigger → start of a run on an idle engine, p50/p99.

Figures are medians over ``--repeat`` rounds. The last line is one JSON object.

    python bench/jobs.py --runs 5000 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from polaris_jupyter.jobs import Engine, RunContext, TaskRegistry, task


def make_registry() -> tuple[TaskRegistry, list[float]]:
    registry = TaskRegistry()
    latencies: list[float] = []

    @task(id="noop", registry=registry)
    async def noop(payload: Any, ctx: RunContext) -> None:
        return None

    @task(id="stamp", registry=registry)
    async def stamp(payload: Any, ctx: RunContext) -> None:
        latencies.append(time.perf_counter() - payload)

    return registry, latencies


async def polaris_throughput(n: int, workdir: Path, *, batch: bool) -> float:
    registry, _ = make_registry()
    engine = Engine(workdir / f"polaris-{batch}-{time.monotonic_ns()}.db", registry, pool_size=64)
    await engine.start()
    try:
        start = time.perf_counter()
        if batch:
            handles = []
            for offset in range(0, n, 1000):
                result = await engine.batch_trigger("noop", [(None, None)] * min(1000, n - offset))
                handles.extend(result.runs)
        else:
            handles = await asyncio.gather(*(engine.trigger("noop") for _ in range(n)))
        await engine.drain(timeout_s=600)
        elapsed = time.perf_counter() - start
        done = await engine.store.query("SELECT COUNT(*) AS n FROM runs WHERE status = 'COMPLETED'")
        assert done[0]["n"] == n == len(handles), "not every run completed"
        return n / elapsed
    finally:
        await engine.stop()


async def trigger_to_start(samples: int, workdir: Path) -> list[float]:
    registry, latencies = make_registry()
    engine = Engine(workdir / f"latency-{time.monotonic_ns()}.db", registry, pool_size=64)
    await engine.start()
    try:
        for _ in range(samples):
            handle = await engine.trigger("stamp", time.perf_counter())
            await handle.result(timeout_s=10)
        return [x * 1000 for x in latencies]
    finally:
        await engine.stop()


async def floor_throughput(n: int, workdir: Path) -> float:
    conn = sqlite3.connect(workdir / f"floor-{time.monotonic_ns()}.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, status TEXT)")

    async def one(i: int) -> None:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO runs (id, status) VALUES (?, 'QUEUED')", (i,))
        conn.execute("UPDATE runs SET status = 'COMPLETED' WHERE id = ?", (i,))
        conn.execute("COMMIT")

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


def huey_throughput(n: int, workdir: Path) -> float | None:
    try:
        from huey import SqliteHuey
    except ImportError:
        return None
    huey = SqliteHuey(filename=str(workdir / f"huey-{time.monotonic_ns()}.db"), results=True)
    done = threading.Semaphore(0)

    @huey.task()
    def noop() -> None:
        done.release()

    consumer = huey.create_consumer(workers=2, worker_type="thread", periodic=False, initial_delay=0.001, backoff=1.0, max_delay=0.005)
    start = time.perf_counter()
    for _ in range(n):
        noop()
    consumer.start()  # worker threads; signal handlers go on this (main) thread
    for _ in range(n):
        done.acquire(timeout=600)
    elapsed = time.perf_counter() - start
    consumer.stop(graceful=True)
    return n / elapsed


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency-samples", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rounds: dict[str, list[float]] = {"polaris": [], "polaris_batch": [], "floor": [], "huey": []}
        for _ in range(args.repeat):
            rounds["polaris"].append(asyncio.run(polaris_throughput(args.runs, workdir, batch=False)))
            rounds["polaris_batch"].append(asyncio.run(polaris_throughput(args.runs, workdir, batch=True)))
            rounds["floor"].append(asyncio.run(floor_throughput(args.runs, workdir)))
            huey = huey_throughput(args.runs, workdir)
            if huey is not None:
                rounds["huey"].append(huey)
        latencies = asyncio.run(trigger_to_start(args.latency_samples, workdir))
    med = {k: statistics.median(v) if v else None for k, v in rounds.items()}
    huey_med = med["huey"]
    print(f"{'':28}{'runs/s (median of ' + str(args.repeat) + ')':>28}")
    print(f"{'polaris, trigger each':28}{med['polaris']:>28,.0f}")
    print(f"{'polaris, batch_trigger 1000':28}{med['polaris_batch']:>28,.0f}")
    print(f"{'floor: bare asyncio+sqlite':28}{med['floor']:>28,.0f}")
    print(f"{'peer: huey (SqliteHuey)':28}{(huey_med or 0):>28,.0f}")
    if huey_med:
        print(f"polaris / huey = {med['polaris'] / huey_med:.1f}x   (target >= 3x)")
    print(f"trigger->start on an idle engine: p50 {pct(latencies, 0.5):.3f} ms, p99 {pct(latencies, 0.99):.3f} ms (target p50 <= 2 ms)")
    figures = {
        "runs": args.runs,
        "runs_per_s": round(med["polaris"] or 0, 1),
        "batch_runs_per_s": round(med["polaris_batch"] or 0, 1),
        "huey_runs_per_s": None if huey_med is None else round(huey_med, 1),
        "floor_runs_per_s": round(med["floor"] or 0, 1),
        "polaris_over_huey": None if not huey_med else round((med["polaris"] or 0) / huey_med, 2),
        "trigger_to_start_p50_ms": round(pct(latencies, 0.5), 3),
        "trigger_to_start_p99_ms": round(pct(latencies, 0.99), 3),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
