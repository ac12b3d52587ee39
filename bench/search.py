"""searchFiles / findFilesByPattern / getRelevantFiles over a large real tree, next to bare rg.

Tree: this interpreter's site-packages (tens of thousands of files) unless ``--root`` says
otherwise. For every pattern, in interleaved rounds (so load from other processes hits all
sides alike), it times:

- bare rg doing the same thing as the tool: the same file set (the same rg ignore flags the
  tool passes), results sorted by path, stopped once the 51st matching line arrives (the tool
  returns 50 and must know whether more exist);
- searchFiles with rg (``engine="rg"``) and with the pure-Python fallback (``engine="python"``),
  checking both give identical results;
- findFilesByPattern next to ``rg --files --sort path`` with the same cap;
- getRelevantFiles latency after the index warm-up, p50/p95 over varied queries.

Targets: rg path ≤ 1.3× rg, fallback ≤ 5× rg, getRelevantFiles p95 ≤ 300 ms. The ratios are
totals over all patterns (sum of per-pattern medians); per-pattern ratios are printed too.
The last line is one JSON object.

    python bench/search.py [--root DIR] [--repeats 5] [--relevant-calls 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from polaris_jupyter.tools import context, search  # noqa: E402
from polaris_jupyter.tools.base import ToolContext, ToolResult  # noqa: E402
from polaris_jupyter.tools.ignore import walk_files  # noqa: E402
from polaris_jupyter.tools.search_text import MAX_RESULTS, TextQuery, find_rg, rg_base_args  # noqa: E402

#: (regex, case sensitive, file glob): a miss (full scan), common hits (early stop), rarer ones.
PATTERNS: list[tuple[str, bool, str | None]] = [
    ("zq_no_such_token_anywhere", False, None),
    ("def __init__", True, None),
    (r"class \w+Error\(", False, None),
    ("todo", False, None),
    (r"import\s+numpy", False, None),
    (r"raise\s+\w+Error", True, "*.pyi"),
    ("copyright", False, "*.txt"),
]
GLOBS = ["**/*.py", "**/METADATA", "*.pyi", "jedi/**/*.py", "**/*.{json,toml}", "**/py.typed"]
RELEVANT_QUERIES = [
    ("http request retry", None),
    ("parse json schema validation", "jsonschema/validators.py"),
    ("jedi completion names", "jedi/api/__init__.py"),
    ("websocket handler", None),
    ("notebook cell outputs", "nbformat/v4/nbbase.py"),
    ("sqlite connection", None),
    ("tornado ioloop timeout", "tornado/ioloop.py"),
    ("traitlets configurable", None),
]


def rg_capped(cmd: list[str], cwd: str, cap_lines: int) -> float:
    """Run rg until it prints ``cap_lines`` lines (then kill it) or ends; seconds."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    seen = 0
    for _ in proc.stdout:
        seen += 1
        if seen >= cap_lines:
            proc.kill()
            break
    proc.stdout.close()
    proc.wait()
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def bench_search(root: str, rg: str, repeats: int) -> dict[str, Any]:
    ctx = ToolContext(root=Path(root))
    rows: list[dict[str, Any]] = []
    agree = True
    for pattern, case, glob in PATTERNS:
        query = TextQuery(pattern, case, glob)
        path_glob = ["-g", glob] if glob and "/" in glob else []  # basename globs are in rg_base_args
        bare_cmd = [*rg_base_args(rg, query), *path_glob, "-n", "-e", pattern, "--", "."]
        times: dict[str, list[float]] = {"rg": [], "tool_rg": [], "python": []}
        for _ in range(repeats):
            times["rg"].append(await asyncio.to_thread(rg_capped, bare_cmd, root, MAX_RESULTS + 1))
            start = time.perf_counter()
            via_rg = await search.search_files(ctx, pattern, glob, case, engine="rg")
            times["tool_rg"].append(time.perf_counter() - start)
            start = time.perf_counter()
            via_python = await search.search_files(ctx, pattern, glob, case, engine="python")
            times["python"].append(time.perf_counter() - start)
            if via_rg.matches != via_python.matches or via_rg.truncated != via_python.truncated:
                agree = False
        row: dict[str, Any] = {"pattern": pattern, "glob": glob, "results": len(via_rg.matches), "more": via_rg.truncated,
               **{k: median(v) for k, v in times.items()}}
        rows.append(row)
        print(f"  /{pattern}/{'' if case else 'i'} {glob or '':8} {row['results']:>3}{'+' if row['more'] else ' '} "
              f"rg {row['rg'] * 1000:8.1f} ms   tool/rg {row['tool_rg'] * 1000:8.1f} ms "
              f"({row['tool_rg'] / row['rg']:.2f}x)   python {row['python'] * 1000:8.1f} ms "
              f"({row['python'] / row['rg']:.2f}x)", flush=True)
    rg_s = sum(r["rg"] for r in rows)
    return {
        "rows": rows, "agree": agree, "rg_s": rg_s,
        "tool_rg_s": sum(r["tool_rg"] for r in rows), "fallback_s": sum(r["python"] for r in rows),
        "rg_ratio_max": max(r["tool_rg"] / r["rg"] for r in rows),
        "fallback_ratio_max": max(r["python"] / r["rg"] for r in rows),
    }


async def bench_globs(root: str, rg: str, repeats: int) -> dict[str, float]:
    ours_total = rg_total = 0.0
    for glob in GLOBS:
        cmd = [rg, "--no-config", "--files", "--hidden", "--no-require-git", "--no-ignore-parent",
               "--no-ignore-global", "--no-ignore-dot", "--sort", "path", "-g", glob, "."]
        rg_times, ours = [], []
        for _ in range(repeats):
            rg_times.append(await asyncio.to_thread(rg_capped, cmd, root, MAX_RESULTS + 1))
            start = time.perf_counter()
            found, more = await asyncio.to_thread(search.find_files, root, glob)
            ours.append(time.perf_counter() - start)
        print(f"  {glob:20} {len(found):>3}{'+' if more else ' '} rg --files {median(rg_times) * 1000:8.1f} ms   "
              f"findFilesByPattern {median(ours) * 1000:8.1f} ms ({median(ours) / median(rg_times):.2f}x)", flush=True)
        ours_total += median(ours)
        rg_total += median(rg_times)
    return {"glob_s": ours_total, "glob_rg_s": rg_total}


async def bench_relevant(root: str, calls: int) -> dict[str, float]:
    tool = context.TOOLS[0]
    ctx = ToolContext(root=Path(root))
    start = time.perf_counter()
    first = await tool.fn({"query": "warm up"}, ctx)
    first_call_s = time.perf_counter() - start
    warmup_calls = 1
    while isinstance(first, ToolResult) and first.data is not None and not first.data["indexComplete"]:
        first = await tool.fn({"query": "warm up"}, ctx)  # each call indexes for INDEX_BUDGET_S more
        warmup_calls += 1
    build_s = time.perf_counter() - start
    print(f"  warm-up: first call {first_call_s:.2f} s (partial index), full index after {warmup_calls} calls, "
          f"{build_s:.1f} s")
    existing: set[str] = set()
    for _, candidate in RELEVANT_QUERIES:
        if candidate is not None:
            is_file: bool = await asyncio.to_thread(Path(root, candidate).is_file)
            if is_file:
                existing.add(candidate)
    latencies_ms = []
    for i in range(calls):
        query, current = RELEVANT_QUERIES[i % len(RELEVANT_QUERIES)]
        args: dict[str, Any] = {"query": query, "maxFiles": 5}
        if current in existing:
            args["currentFile"] = current
        start = time.perf_counter()
        await tool.fn(args, ctx)
        latencies_ms.append((time.perf_counter() - start) * 1000)
    return {"relevant_build_s": build_s, "relevant_first_call_s": first_call_s, "relevant_p50_ms": pct(latencies_ms, 0.5),
            "relevant_p95_ms": pct(latencies_ms, 0.95), "relevant_max_ms": max(latencies_ms)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=sysconfig.get_paths()["purelib"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--relevant-calls", type=int, default=60)
    opts = parser.parse_args()
    root = await asyncio.to_thread(os.path.realpath, opts.root)
    rg = find_rg()
    if rg is None:
        sys.exit("bench/search.py needs ripgrep on PATH (apt-get install ripgrep)")
    files = sum(1 for _ in walk_files(root))
    raw_files = sum(len(names) for _, _, names in os.walk(root))
    print(f"tree: {root}\n  {files} files after ignore rules ({raw_files} on disk); rg {rg}", flush=True)
    full_scan = []
    for _ in range(3):
        full_scan.append(await asyncio.to_thread(rg_capped, [rg, "--no-config", "-n", "-i", "zq_none", "."], root, 1))
    print(f"  bare `rg -n -i` full parallel scan (for scale): {median(full_scan) * 1000:.1f} ms")
    print(f"searchFiles (median of {opts.repeats}; ratio to bare rg doing the same thing):")
    searched = await bench_search(root, rg, opts.repeats)
    print("findFilesByPattern:")
    globs = await bench_globs(root, rg, opts.repeats)
    print("getRelevantFiles:")
    relevant = await bench_relevant(root, opts.relevant_calls)
    figures = {
        "files": files,
        "rg_s": round(searched["rg_s"], 4),
        "tool_rg_s": round(searched["tool_rg_s"], 4),
        "fallback_s": round(searched["fallback_s"], 4),
        "rg_ratio": round(searched["tool_rg_s"] / searched["rg_s"], 3),
        "fallback_ratio": round(searched["fallback_s"] / searched["rg_s"], 3),
        "rg_ratio_max": round(searched["rg_ratio_max"], 3),
        "fallback_ratio_max": round(searched["fallback_ratio_max"], 3),
        "glob_s": round(globs["glob_s"], 4),
        "glob_rg_s": round(globs["glob_rg_s"], 4),
        "glob_ratio": round(globs["glob_s"] / globs["glob_rg_s"], 3),
        "relevant_build_s": round(relevant["relevant_build_s"], 2),
        "relevant_first_call_s": round(relevant["relevant_first_call_s"], 2),
        "relevant_p50_ms": round(relevant["relevant_p50_ms"], 1),
        "relevant_p95_ms": round(relevant["relevant_p95_ms"], 1),
        "relevant_max_ms": round(relevant["relevant_max_ms"], 1),
        "engines_agree": searched["agree"],
        "rg_full_scan_s": round(median(full_scan), 4),
    }
    print(f"  index build {figures['relevant_build_s']} s; latency p50 {figures['relevant_p50_ms']} ms, "
          f"p95 {figures['relevant_p95_ms']} ms (target ≤ 300 ms)")
    print(f"searchFiles: rg path {figures['rg_ratio']}x rg (target ≤ 1.3), fallback {figures['fallback_ratio']}x rg "
          f"(target ≤ 5); findFilesByPattern {figures['glob_ratio']}x rg --files; engines agree: {searched['agree']}")
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
