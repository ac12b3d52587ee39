"""A throwaway PostgreSQL cluster for tests and benches: initdb + pg_ctl on a temp dir.

``initdb`` refuses to run as root, so when the current user is root the server runs as the
``postgres`` system user (``runuser -u postgres --``) on a directory it owns. Trust auth on a
free loopback port, the socket in the same temp dir: nothing outside it is touched, and the
Debian package's own cluster (``15/main``) is left alone.

Example::

    with PgCluster.start() as cluster:
        url = cluster.url  # postgresql://postgres@127.0.0.1:PORT/postgres
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PgCluster", "PgUnavailable", "find_pg_bin"]


class PgUnavailable(RuntimeError):
    """PostgreSQL's server programs are not installed (Debian: ``apt-get install postgresql``)."""


def find_pg_bin() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``: ``$PATH`` first, then Debian's layout."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        raise PgUnavailable("PostgreSQL is not installed: no pg_ctl on PATH nor under /usr/lib/postgresql/*/bin")
    return Path(candidates[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgCluster:
    """A running throwaway cluster; :meth:`stop` ends it and deletes its files."""

    root: Path
    port: int
    bin_dir: Path
    run_as: str | None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @classmethod
    def start(cls, *, timeout_s: float = 60.0, max_connections: int = 200) -> PgCluster:
        bin_dir = find_pg_bin()
        root = Path(tempfile.mkdtemp(prefix="polaris-pg-"))
        run_as: str | None = None
        if os.geteuid() == 0:
            run_as = "postgres"
            entry = pwd.getpwnam(run_as)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        cluster = cls(root, _free_port(), bin_dir, run_as)
        data = root / "data"
        try:
            cluster._run(
                [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                 "--no-sync", "--locale=C"],
                timeout_s=timeout_s,
            )
            options = (
                f"-p {cluster.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c synchronous_commit=off -c full_page_writes=off -c max_connections={max_connections}"
            )
            cluster._run(
                [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w",
                 "-t", str(int(timeout_s)), "start"],
                timeout_s=timeout_s + 5,
            )
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        cluster._wait_ready(timeout_s)
        return cluster

    def _run(self, argv: list[str], *, timeout_s: float) -> None:
        if self.run_as is not None:
            argv = ["runuser", "-u", self.run_as, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
        if done.returncode != 0:
            log = (self.root / "log").read_text() if (self.root / "log").exists() else ""
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}\n{log[-2000:]}")

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"PostgreSQL did not accept connections on port {self.port} within {timeout_s}s")

    def stop(self) -> None:
        try:
            self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop"],
                      timeout_s=60)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
