"""Real ``polaris-jupyter worker`` processes for the PostgreSQL tests: started on a schema,
ready when they print it, output in a log file (never a pipe nobody reads), stopped with
SIGTERM (or killed) at the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class Workers:
    """Worker processes on one schema; ``markers`` is the folder tests/pg/worker_tasks.py writes."""

    def __init__(self, url: str, schema: str, markers: Path) -> None:
        self.url, self.schema, self.markers = url, schema, markers
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, Path] = {}

    def start(
        self,
        n: int = 1,
        *,
        concurrency: int = 8,
        args: Sequence[str] = ("--task-modules", "tests.pg.worker_tasks"),
        env: Mapping[str, str] | None = None,
        timeout_s: float = 60.0,
    ) -> list[subprocess.Popen[bytes]]:
        """Start ``n`` workers with ``args`` and wait until each says it is ready."""
        full_env = {**(env if env is not None else os.environ), "POLARIS_TEST_MARKERS": str(self.markers),
                    "PYTHONPATH": str(ROOT)}
        started = []
        for _ in range(n):
            log_path = self.markers.parent / f"worker-{len(self.procs) + 1}.log"
            with log_path.open("wb") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "polaris_jupyter.worker", *args, "--concurrency", str(concurrency),
                     "--database-url", self.url, "--schema", self.schema, "--log-level", "WARNING"],
                    cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                )
            self.procs.append(proc)
            self.logs[proc.pid] = log_path
            deadline = time.monotonic() + timeout_s
            while b" ready (" not in log_path.read_bytes():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"worker did not start:\n{self.log(proc)}")
                time.sleep(0.05)
            started.append(proc)
        return started

    def executor_id(self, proc: subprocess.Popen[bytes]) -> str:
        """The executor id the worker announced (``polaris-jupyter worker <id> ready (...)``)."""
        for line in self.logs[proc.pid].read_text(errors="replace").splitlines():
            if " ready (" in line and line.startswith("polaris-jupyter worker "):
                return line.split()[2]
        raise AssertionError(f"worker {proc.pid} announced no executor id")

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        return self.logs[proc.pid].read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
