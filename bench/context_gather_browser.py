"""Context gathered in the browser: the time ``chat/labContext.ts`` takes to gather the chat's
context from a 50-cell notebook in a real JupyterLab (target: p95 <= 50 ms), next to the
server-side figure of ``bench/context_block.py`` (attach_context on the same notebook).

A real ``jupyter lab`` (temp root, workspaces, settings; the freshly built labextension; no model)
and Debian's Chromium through Playwright. The notebook is context_block's: 50 code cells with
stdout, a DataFrame repr + HTML, every tenth a PNG figure, the last an error. The browser moves
through it in command mode as a user selecting cells does (Shift+Down extends the selection, Down
moves on, back up at the end), so every gather has the notebook, up to 8 selected cells' sources
and the active cell's outputs (nbformat, PNGs included). Each gather is one User Timing measure
``polaris:context-gather`` (always on in labContext.ts); one key press is one gather, and the
bench waits for its measure before the next. Figures are p50 / p95 / max over ``--repeat``
gathers after ``--warmup``; the last line is one JSON object.

    python bench/context_gather_browser.py --repeat 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.context_block import make_notebook, measure  # noqa: E402
from polaris_jupyter.config import PolarisConfig  # noqa: E402
from tests.ui.conftest import BUILT_EXTENSION, CHROMIUM, CHROMIUM_ARGS, LabServer  # noqa: E402

MEASURE = "polaris:context-gather"
TARGET_P95_MS = 50.0
CELLS = 50


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered), 2), "p95_ms": round(p95, 2), "max_ms": round(ordered[-1], 2)}


def key_presses(count: int) -> list[str]:
    """Selecting cells down the notebook (7 extends, 1 move on), then back up, and so on."""
    keys: list[str] = []
    active, step = 0, 1
    while len(keys) < count:
        if active + step < 0 or active + step >= CELLS:
            step = -step
        arrow = "ArrowDown" if step > 0 else "ArrowUp"
        keys.append(arrow if len(keys) % 8 == 7 else f"Shift+{arrow}")
        active += step
    return keys


def browser_gathers(lab: LabServer, repeat: int, warmup: int, screenshot: Path | None) -> tuple[list[float], list[int], int]:
    """The gather durations (ms) and item counts of ``repeat`` key presses after ``warmup``; and
    the presses that produced no measure within 5 s (none expected)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
            page.goto(lab.lab_url("lab/workspaces/bench/tree/analysis.ipynb") + "&reset", wait_until="domcontentloaded")
            cells = page.locator(".jp-NotebookPanel .jp-CodeCell")
            cells.nth(CELLS - 1).wait_for(state="attached", timeout=90_000)
            page.wait_for_function(f"() => performance.getEntriesByName('{MEASURE}').length > 0", timeout=30_000)
            cells.nth(0).locator(".jp-InputPrompt").click()  # command mode on the first cell
            samples: list[float] = []
            items: list[int] = []
            missed = 0
            for n, key in enumerate(key_presses(warmup + repeat)):
                before = page.evaluate(f"() => performance.getEntriesByName('{MEASURE}').length")
                page.keyboard.press(key)
                try:
                    page.wait_for_function(f"(n) => performance.getEntriesByName('{MEASURE}').length > n", arg=before, timeout=5_000)
                except PlaywrightTimeout:
                    missed += 1
                    continue
                entries = page.evaluate(f"() => performance.getEntriesByName('{MEASURE}').map(e => [e.duration, e.detail?.items ?? 0])")
                if n >= warmup:
                    samples.extend(duration for duration, _ in entries[before:])
                    items.extend(count for _, count in entries[before:])
            if screenshot:
                page.screenshot(path=str(screenshot))
            return samples, items, missed
        finally:
            browser.close()


async def server_figures(root: Path, repeat: int) -> dict[str, Any]:
    budget = PolarisConfig().context_token_budget
    return await measure(root, [{"kind": "notebook", "path": "analysis.ipynb"}], budget, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=60, help="gathers measured (at least 30)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--screenshot", type=Path, default=None, help="save what the browser showed at the end")
    args = parser.parse_args()
    if args.repeat < 30:
        parser.error("--repeat must be at least 30")
    if not CHROMIUM.exists() or not (BUILT_EXTENSION / "package.json").exists():
        sys.exit("needs /usr/bin/chromium and the built labextension (cd labextension && npm run build)")
    with tempfile.TemporaryDirectory() as tmp:
        lab = LabServer(Path(tmp))
        lab.root.mkdir(parents=True)
        make_notebook(lab.root / "analysis.ipynb", CELLS)
        notebook_bytes = (lab.root / "analysis.ipynb").stat().st_size
        server = asyncio.run(server_figures(lab.root, args.repeat))
        lab.start()
        try:
            samples, items, missed = browser_gathers(lab, args.repeat, args.warmup, args.screenshot)
        finally:
            lab.stop()
    if len(samples) < 30:
        sys.exit(f"only {len(samples)} gathers were measured ({missed} key presses produced none)")
    browser = percentiles(samples)
    print(f"{CELLS}-cell notebook ({notebook_bytes:,} bytes on disk), {len(samples)} gathers in Chromium, "
          f"{min(items)}-{max(items)} items each (mean {statistics.mean(items):.1f}); timer resolution ~0.1 ms")
    print(f"  browser: labContext gather      p50 {browser['p50_ms']:6.2f} ms  p95 {browser['p95_ms']:6.2f} ms  "
          f"max {browser['max_ms']:6.2f} ms   (target p95 <= {TARGET_P95_MS:.0f} ms: "
          f"{'met' if browser['p95_ms'] <= TARGET_P95_MS else 'MISSED'})")
    print(f"  server:  attach_context (notebook item) p50 {server['p50_ms']:6.2f} ms  p95 {server['p95_ms']:6.2f} ms   "
          f"block {server['block_chars']:,} chars ~{server['block_tokens']:,} tokens")
    print(json.dumps({
        "cells": CELLS, "notebook_bytes": notebook_bytes, "gathers": len(samples), "missed_presses": missed,
        "browser_context_gather_p50_ms": browser["p50_ms"], "browser_context_gather_p95_ms": browser["p95_ms"],
        "browser_context_gather_max_ms": browser["max_ms"],
        "browser_context_items_mean": round(statistics.mean(items), 2), "browser_context_items_min": min(items),
        "server_context_block_p50_ms": server["p50_ms"], "server_context_block_p95_ms": server["p95_ms"],
        "server_context_block_chars": server["block_chars"], "target_p95_ms": TARGET_P95_MS,
        "target_met": browser["p95_ms"] <= TARGET_P95_MS,
    }))


if __name__ == "__main__":
    main()
