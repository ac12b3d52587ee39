"""Attached context on the server: the size of the context block for a 50-cell notebook and the
time to gather and build it (``chat.context.attach_context``: workspace reads in a thread, parse,
render, budget), as the post of a message pays it.

The notebook is made here: 50 code cells of 6-14 lines, each with outputs like a working
notebook's (stdout, a DataFrame repr + HTML, every tenth a PNG figure, the last an error with an
IPython traceback). Two attachments are measured:

- ``notebook``: the whole notebook as one item (readNotebook's rendering) at the default budget;
- ``explain``: what Explain error sends (the failing cell + its outputs, and a 300-line module).

Figures are p50 / p95 over ``--repeat`` rounds after one warm-up; the last line is one JSON object.

    python bench/context_block.py --repeat 50
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import struct
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import nbformat
from nbformat import v4

from polaris_jupyter.chat.context import attach_context
from polaris_jupyter.config import PolarisConfig


def _png(width: int, height: int) -> str:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + chunk + b"\x00" * 30_000).decode()


def make_notebook(path: Path, cells: int = 50) -> None:
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for i in range(cells):
        body = "\n".join(f"value_{i}_{j} = compute(frame, column='c{j}', window={j + 3})" for j in range(6 + i % 9))
        cell = v4.new_code_cell(f"# step {i}\n{body}\nframe.describe()", execution_count=i + 1)
        table = "\n".join(f"{r:>3}  {r * 1.5:>8.2f}  {r * 7 % 13:>4}" for r in range(8))
        cell.outputs = [
            v4.new_output("stream", name="stdout", text=f"step {i}: {1000 + i} rows\n"),
            v4.new_output("execute_result", execution_count=i + 1,
                          data={"text/plain": table, "text/html": "<table>" + "<tr><td>1</td></tr>" * 40 + "</table>"}),
        ]
        if i % 10 == 9:
            cell.outputs.append(v4.new_output("display_data", data={"image/png": _png(640, 480),
                                                                   "text/plain": "<Figure size 640x480>"}))
        if i == cells - 1:
            frames = [f"\x1b[0;32mFile /srv/lib/pipeline.py:{40 + k}\x1b[0m, in stage_{k}(frame)" for k in range(12)]
            cell.outputs.append(v4.new_output("error", ename="KeyError", evalue="'price'",
                                              traceback=[*frames, "\x1b[0;31mKeyError\x1b[0m: 'price'"]))
        nb.cells.append(cell)
    path.write_text(nbformat.writes(nb))


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered), 2), "p95_ms": round(p95, 2)}


async def measure(root: Path, items: list[dict[str, Any]], budget: int, repeat: int) -> dict[str, Any]:
    context = {"items": items}
    stored = await attach_context(context, None, root=root, budget_tokens=budget, kernels=None)  # warm-up
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        stored = await attach_context(context, None, root=root, budget_tokens=budget, kernels=None)
        samples.append((time.perf_counter() - started) * 1000)
    assert stored is not None
    block = stored["block"]
    return {"block_chars": len(block), "block_tokens": stored["blockTokens"], "budget_tokens": budget,
            "truncated": [a["label"] for a in stored["attachments"] if a["truncated"]], **_percentiles(samples)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    budget = PolarisConfig().context_token_budget
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_notebook(root / "analysis.ipynb")
        (root / "pipeline.py").write_text("".join(f"def stage_{k}(frame):\n    return frame  # {k}\n\n" for k in range(100)))
        notebook_bytes = (root / "analysis.ipynb").stat().st_size
        whole = await measure(root, [{"kind": "notebook", "path": "analysis.ipynb"}], budget, args.repeat)
        unbounded = await measure(root, [{"kind": "notebook", "path": "analysis.ipynb"}], 1_000_000, args.repeat)
        explain = await measure(root, [{"kind": "cell", "path": "analysis.ipynb", "cellIndex": 49},
                                       {"kind": "file", "path": "pipeline.py"}], budget, args.repeat)
    print(f"50-cell notebook ({notebook_bytes:,} bytes on disk)")
    for name, figures in (("notebook item, default budget", whole), ("notebook item, no budget", unbounded),
                          ("explain: cell + outputs + file", explain)):
        print(f"  {name:32s} block {figures['block_chars']:>7,} chars ~{figures['block_tokens']:>6,} tokens   "
              f"gather+build p50 {figures['p50_ms']:6.2f} ms  p95 {figures['p95_ms']:6.2f} ms")
    print(json.dumps({"notebook_bytes": notebook_bytes, "repeat": args.repeat, "notebook": whole,
                      "notebook_unbounded": unbounded, "explain": explain}))


if __name__ == "__main__":
    asyncio.run(main())
