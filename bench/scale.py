"""Scale-out throughput: no-op runs through the engine on PostgreSQL + DBOS with 1 and 2
``polaris-jupyter worker`` processes, next to raw DBOS with the same queue settings (one
process enqueueing and executing), procrastinate when installed, and the embedded SQLite engine.

Everything runs on a throwaway loopback cluster (``polaris_jupyter.testing.pg_cluster``), so on
a small machine PostgreSQL shares the CPU with the workers: CPU ms per run (workers + the
PostgreSQL server) is printed next to each rate. ``--repeats N`` runs every measurement N
times, interleaved (1 worker, 2 workers, raw DBOS, procrastinate, then again), and reports the
median of each: on a shared machine the load moves between repeats, and interleaving exposes
every engine to the same moments. Every system gets the same number of slots (``--concurrency``,
default 128): a DBOS worker dequeues at most its slots per poll of its queue, so the slot count,
not a run's cost, sets its ceiling (the README's table sweeps 32, 64, 128). The last line is one
JSON object.

    python bench/scale.py --runs 5000 --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from polaris_jupyter.jobs import Engine, RunContext, TaskRegistry, task
from polaris_jupyter.testing.pg_cluster import PgCluster

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = 128  # slots of every system (--concurrency); a DBOS worker dequeues at most this many per poll
POLL_S = 0.1  # DBOS queue polling of the workers and of raw DBOS (--poll)


def _cpu_s(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def _postgres_pids(cluster: PgCluster) -> list[int]:
    """The cluster's postmaster and its children (not the machine's other PostgreSQL servers)."""
    try:
        postmaster = int((cluster.root / "data" / "postmaster.pid").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return []
    out = [postmaster]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if f"\nPPid:\t{postmaster}\n" in status:
                out.append(int(entry.name))
    return out


def _client_registry() -> TaskRegistry:
    registry = TaskRegistry()

    @task(id="scale-noop", registry=registry)
    async def scale_noop(payload: Any, ctx: RunContext) -> None:
        raise AssertionError("executed by the workers")

    return registry


def _start_workers(url: str, schema: str, n: int) -> list[subprocess.Popen[bytes]]:
    """Start ``n`` workers, their output in a temp log file (a pipe nobody reads could fill and
    stall them), and wait until each says it is ready."""
    procs = []
    for _ in range(n):
        log_path = Path(tempfile.mkstemp(prefix="polaris-bench-worker-", suffix=".log")[1])
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "polaris_jupyter.worker", "--task-modules", "bench.scale_tasks",
                 "--concurrency", str(CONCURRENCY), "--database-url", url, "--schema", schema, "--log-level", "WARNING",
                 "--poll-interval", str(POLL_S)],
                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while b" ready (" not in log_path.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        procs.append(proc)
    return procs


async def pg_engine(cluster: PgCluster, runs: int, workers: int, latency_samples: int, tag: str = "") -> dict[str, Any]:
    from polaris_jupyter.jobs.pg import PgEngine

    schema = f"bench_{workers}w_{os.getpid()}{tag and '_' + tag}"
    procs = _start_workers(cluster.url, schema, workers)
    client = PgEngine(cluster.url, _client_registry(), schema=schema, execute_tasks=False, role="bench")
    await client.start()
    try:
        idle = await _latencies(client, latency_samples)  # idle workers: nothing else queued
        pids = [p.pid for p in procs] + _postgres_pids(cluster) + [os.getpid()]
        cpu0, t0 = _cpu_s(pids), time.perf_counter()
        for start in range(0, runs, 1000):
            await client.batch_trigger("scale-noop", [(i, None) for i in range(start, min(runs, start + 1000))])
        while True:
            rows = await client.store.query("SELECT COUNT(*) AS n FROM runs WHERE status = 'COMPLETED'")
            if int(rows[0]["n"]) >= runs:
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - t0
        cpu = _cpu_s(sorted(set(pids) | set(_postgres_pids(cluster)))) - cpu0  # each process once
        after = await _latencies(client, latency_samples)  # DBOS may still poll slower after a burst
        return {"runs_per_s": runs / elapsed, "cpu_ms_per_run": cpu * 1000 / runs,
                "trigger_to_start_p50_ms": statistics.median(idle) if idle else None,
                "after_burst_p50_ms": statistics.median(after) if after else None}
    finally:
        await client.stop()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


async def _latencies(client: Any, samples: int) -> list[float]:
    """Trigger → start (ms) of ``samples`` runs triggered one at a time, each at a random moment
    (uniform over two queue polling intervals) as real triggers come: a fixed pause between
    them would lock onto the phase of DBOS's queue poll and measure that phase instead."""
    out = []
    for _ in range(samples):
        await asyncio.sleep(random.uniform(0, 2 * POLL_S))
        handle = await client.trigger("scale-noop")
        run = await client.wait_for(handle.id, timeout_s=30)
        assert run.started_at is not None
        out.append((run.started_at - run.created_at) * 1000)
    return out


_RAW_DBOS = r'''
import asyncio, sys, time
from dbos import DBOS
url, schema, runs, conc, poll = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])

@DBOS.workflow(name="raw.noop")
async def noop(i: int) -> None:
    return None

async def main() -> None:
    DBOS(config={"name": "raw", "system_database_url": url, "dbos_system_schema": schema, "executor_id": "raw-1",
                 "application_version": "raw", "log_level": "WARNING", "sys_db_pool_size": 20})
    await asyncio.to_thread(DBOS.launch)
    await DBOS.register_queue_async("raw", worker_concurrency=conc, polling_interval_sec=poll)
    t0 = time.perf_counter()
    handles = []
    for start in range(0, runs, 16):
        handles += await asyncio.gather(*(DBOS.enqueue_workflow_with_options_async(
            {"workflow_name": "raw.noop", "queue_name": "raw", "app_version": "raw"}, i)
            for i in range(start, min(runs, start + 16))))
    for h in handles:
        await h.get_result()
    print(runs / (time.perf_counter() - t0), flush=True)
    await asyncio.to_thread(DBOS.destroy)

asyncio.run(main())
'''

_PROCRASTINATE = r'''
import asyncio, sys, time
import procrastinate, psycopg
url, runs, conc, schema = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
with psycopg.connect(url, autocommit=True) as conn:  # a schema of its own per repeat
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
app = procrastinate.App(connector=procrastinate.PsycopgConnector(
    conninfo=url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"))
done = 0

@app.task(name="noop")
async def noop(i: int) -> None:
    global done
    done += 1

async def main() -> None:
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        t0 = time.perf_counter()
        for start in range(0, runs, 1000):
            await noop.batch_defer_async(*({"i": i} for i in range(start, min(runs, start + 1000))))
        worker = asyncio.create_task(app.run_worker_async(concurrency=conc, wait=True, install_signal_handlers=False))
        while done < runs:
            await asyncio.sleep(0.01)
        print(runs / (time.perf_counter() - t0), flush=True)
        worker.cancel()

asyncio.run(main())
'''


def _subprocess_rate(code: str, *args: str) -> float | None:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        print(f"  (failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode})")
        return None
    return float(done.stdout.strip().splitlines()[-1])


async def sqlite_engine(runs: int) -> float:
    registry = TaskRegistry()

    @task(id="noop", registry=registry)
    async def noop(payload: Any, ctx: RunContext) -> None:
        return None

    with tempfile.TemporaryDirectory() as tmp:
        async with Engine(Path(tmp) / "runs.db", registry, pool_size=CONCURRENCY) as engine:
            t0 = time.perf_counter()
            for start in range(0, runs, 1000):
                await engine.batch_trigger("noop", [(i, None) for i in range(start, min(runs, start + 1000))])
            await engine.drain(timeout_s=600)
            return runs / (time.perf_counter() - t0)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _median_of(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the repeats (figures of one repeat may come from different ones)."""
    return {key: _median([r[key] for r in results if r.get(key) is not None]) for key in results[0]}


def main() -> None:
    global POLL_S, CONCURRENCY
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--latency-samples", type=int, default=60)
    parser.add_argument("--poll", type=float, default=POLL_S, help="DBOS queue polling interval, s (default 0.1)")
    parser.add_argument("--repeats", type=int, default=1, help="measure everything N times, report medians (default 1)")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY,
                        help=f"slots of every worker, raw DBOS and procrastinate alike (default {CONCURRENCY})")
    args = parser.parse_args()
    POLL_S, CONCURRENCY = args.poll, args.concurrency
    result: dict[str, Any] = {"runs": args.runs, "poll_s": POLL_S, "concurrency": CONCURRENCY, "repeats": args.repeats}
    ones: list[dict[str, Any]] = []
    twos: list[dict[str, Any]] = []
    raws: list[float] = []
    procs: list[float] = []
    with PgCluster.start() as cluster:
        for repeat in range(1, args.repeats + 1):
            print(f"-- repeat {repeat} (load {os.getloadavg()[0]:.1f})", flush=True)
            one = asyncio.run(pg_engine(cluster, args.runs, 1, args.latency_samples, tag=str(repeat)))
            ones.append(one)
            print(f"polaris on PostgreSQL, 1 worker : {one['runs_per_s']:8.1f} runs/s  {one['cpu_ms_per_run']:.2f} CPU ms/run  "
                  f"idle trigger->start p50 {one['trigger_to_start_p50_ms']:.1f} ms "
                  f"(right after the burst: {one['after_burst_p50_ms']:.1f} ms)", flush=True)
            two = asyncio.run(pg_engine(cluster, args.runs, 2, 0, tag=str(repeat)))
            twos.append(two)
            print(f"polaris on PostgreSQL, 2 workers: {two['runs_per_s']:8.1f} runs/s  {two['cpu_ms_per_run']:.2f} CPU ms/run",
                  flush=True)
            raw = _subprocess_rate(_RAW_DBOS, cluster.url, f"raw_dbos_{repeat}", str(args.runs), str(CONCURRENCY),
                                   str(POLL_S))
            raws += [raw] if raw is not None else []
            print(f"raw DBOS (1 process, same queue settings): {raw and round(raw, 1)} runs/s", flush=True)
            try:
                import procrastinate  # noqa: F401

                proc_rate = _subprocess_rate(_PROCRASTINATE, cluster.url, str(args.runs), str(CONCURRENCY),
                                             f"procrastinate_{repeat}")
            except ImportError:
                proc_rate = None
            procs += [proc_rate] if proc_rate is not None else []
            print(f"procrastinate (1 worker): {proc_rate and round(proc_rate, 1)} runs/s", flush=True)
    one, two = _median_of(ones), _median_of(twos)
    raw, proc_rate = _median(raws), _median(procs)
    sqlite = asyncio.run(sqlite_engine(args.runs))
    print(f"polaris embedded (SQLite)      : {sqlite:8.1f} runs/s")
    result.update({
        "pg_runs_per_s_1w": round(one["runs_per_s"], 1),
        "pg_runs_per_s_2w": round(two["runs_per_s"], 1),
        "dbos_raw_runs_per_s": raw and round(raw, 1),
        "procrastinate_runs_per_s": proc_rate and round(proc_rate, 1),
        "pg_trigger_to_start_p50_ms": round(one["trigger_to_start_p50_ms"], 1),
        "pg_trigger_to_start_after_burst_p50_ms": round(one["after_burst_p50_ms"], 1),
        "pg_cpu_ms_per_run_1w": round(one["cpu_ms_per_run"], 2),
        "pg_cpu_ms_per_run_2w": round(two["cpu_ms_per_run"], 2),
        "sqlite_runs_per_s": round(sqlite, 1),
    })
    print(json.dumps(result))


if __name__ == "__main__":
    main()
