"""``polaris-jupyter worker``: execute runs from a shared PostgreSQL database, no Jupyter server.

Usage::

    POLARIS_DATABASE_URL=postgresql://user@db/polaris \\
        polaris-jupyter worker --task-modules myproject.tasks,other.tasks --concurrency 16 --name gpu-1

(also ``python -m polaris_jupyter.worker ...``). The modules are imported and every task they
register with ``@task`` is served: this worker dequeues only the DBOS queues of those tasks.
The database schema is ``--schema``, else ``POLARIS_DATABASE_SCHEMA``, else ``polaris_<user>``
(the same default as the Jupyter server of that user). ``--name`` is the executor id, which
must be unique and stable: without it the worker takes the first free ``<host>-worker-<n>``.

SIGTERM / SIGINT stop it gracefully: running attempts are interrupted and their runs handed
back to the queue (the attempt is not counted). After ``kill -9`` its heartbeat stops; within
``--dead-after`` seconds another live process resumes its runs, counting the lost attempt.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

__all__ = ["cli", "main", "run_worker"]

log = logging.getLogger("polaris_jupyter.worker")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polaris-jupyter worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--task-modules", required=True,
                        help="comma-separated Python modules whose @task definitions this worker executes")
    parser.add_argument("--concurrency", type=int, default=16, help="attempts executing at once (default 16)")
    parser.add_argument("--name", default=None, help="executor id: unique and stable (default <host>-worker-<n>)")
    parser.add_argument("--database-url", default=os.environ.get("POLARIS_DATABASE_URL"),
                        help="postgresql://... (default $POLARIS_DATABASE_URL)")
    parser.add_argument("--schema", default=os.environ.get("POLARIS_DATABASE_SCHEMA") or None,
                        help="database schema (default $POLARIS_DATABASE_SCHEMA, else polaris_<user>)")
    parser.add_argument("--dead-after", type=float, default=10.0, dest="dead_after_s",
                        help="seconds without a heartbeat after which an executor is dead (default 10)")
    parser.add_argument("--log-level", default="INFO")
    return parser


def _import_tasks(modules: str) -> list[str]:
    from polaris_jupyter.jobs import default_registry

    names = [m.strip() for m in modules.split(",") if m.strip()]
    if not names:
        raise SystemExit("polaris-jupyter worker: --task-modules names no module")
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:
            raise SystemExit(f"polaris-jupyter worker: cannot import task module {name!r}: {exc}") from exc
    tasks = sorted(t.id for t in default_registry.all())
    if not tasks:
        raise SystemExit(f"polaris-jupyter worker: the modules {', '.join(names)} register no @task")
    return tasks


async def run_worker(args: argparse.Namespace, stop: asyncio.Event | None = None) -> None:
    """Run one worker until ``stop`` is set (or SIGTERM / SIGINT)."""
    from polaris_jupyter.jobs import default_registry
    from polaris_jupyter.jobs.pg import PgEngine

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    engine = PgEngine(
        args.database_url, default_registry, schema=args.schema, executor_id=args.name,
        pool_size=args.concurrency, dead_after_s=args.dead_after_s, role="worker",
    )
    await engine.start()
    tasks = ", ".join(sorted(t.id for t in default_registry.all()))
    print(f"polaris-jupyter worker {engine.executor_id} ready (schema {engine.schema}; tasks: {tasks})", flush=True)
    try:
        await stop.wait()
    finally:
        log.info("worker %s stopping: handing back its running attempts", engine.executor_id)
        await engine.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.database_url:
        print("polaris-jupyter worker: set --database-url or POLARIS_DATABASE_URL (postgresql://...)", file=sys.stderr)
        return 2
    if not args.database_url.startswith(("postgresql://", "postgres://")):
        print(f"polaris-jupyter worker: the database URL must be postgresql://..., not {args.database_url[:20]!r}",
              file=sys.stderr)
        return 2
    if args.concurrency < 1:
        print("polaris-jupyter worker: --concurrency must be at least 1", file=sys.stderr)
        return 2
    _import_tasks(args.task_modules)
    asyncio.run(run_worker(args))
    return 0


def cli(argv: Sequence[str] | None = None) -> int:
    """``polaris-jupyter <command>``: today one command, ``worker``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: polaris-jupyter worker --task-modules mod1,mod2 [--concurrency N] [--name ID]")
        return 0 if argv else 2
    if argv[0] != "worker":
        print(f"polaris-jupyter: unknown command {argv[0]!r}; the command is 'worker'", file=sys.stderr)
        return 2
    return main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
