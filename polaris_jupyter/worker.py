"""``polaris-jupyter worker``: execute runs from a shared PostgreSQL database, no Jupyter server.

Usage::

    POLARIS_DATABASE_URL=postgresql://user@db/polaris \\
        polaris-jupyter worker --task-modules myproject.tasks,other.tasks --concurrency 16 --name gpu-1

(also ``python -m polaris_jupyter.worker ...``). The modules are imported and every task they
register with ``@task`` is served: this worker dequeues only the DBOS queues of those tasks.

``--workspace DIR`` makes the worker serve the built-in tasks too (chat's ``process-message``,
``generate-project``, ``run-notebook``, ``cleanup``), through the same composition root as the
Jupyter server (:class:`~polaris_jupyter.runtime.PolarisRuntime`) on the workspace ``DIR``: the
same files as the server's root dir (a shared mount; its path may differ). What a run carries
is its ids; the conversation, its history, its provider/model choice and permission mode are
read from the database. Everything else is this worker's own configuration: the ``POLARIS_*``
environment (``POLARIS_PROVIDER``, ``POLARIS_MAX_STEPS``, ...) and the provider keys
(``OPENAI_API_KEY``, ``CEREBRAS_API_KEY``, ...), which never travel through the database.
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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from polaris_jupyter.config import PolarisConfig

__all__ = ["cli", "main", "run_worker"]

log = logging.getLogger("polaris_jupyter.worker")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polaris-jupyter worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--task-modules", default="",
                        help="comma-separated Python modules whose @task definitions this worker executes")
    parser.add_argument("--workspace", default=None,
                        help="also run the built-in tasks (chat, generation, run-notebook, cleanup) on this "
                             "workspace folder: the same files as the Jupyter server's root dir")
    parser.add_argument("--concurrency", type=int, default=16, help="attempts executing at once (default 16)")
    parser.add_argument("--name", default=None, help="executor id: unique and stable (default <host>-worker-<n>)")
    parser.add_argument("--database-url", default=os.environ.get("POLARIS_DATABASE_URL"),
                        help="postgresql://... (default $POLARIS_DATABASE_URL)")
    parser.add_argument("--schema", default=os.environ.get("POLARIS_DATABASE_SCHEMA") or None,
                        help="database schema (default $POLARIS_DATABASE_SCHEMA, else polaris_<user>)")
    parser.add_argument("--dead-after", type=float, default=10.0, dest="dead_after_s",
                        help="seconds without a heartbeat after which an executor is dead (default 10)")
    parser.add_argument("--poll-interval", type=float, default=0.1, dest="poll_s",
                        help="seconds between DBOS queue polls: half of it is the mean wait of an idle "
                             "trigger before it starts; lower costs more idle database load (default 0.1)")
    parser.add_argument("--log-level", default="INFO")
    return parser


def _import_tasks(modules: str, *, builtins: bool = False) -> list[str]:
    from polaris_jupyter.jobs import default_registry

    names = [m.strip() for m in modules.split(",") if m.strip()]
    if not names:
        if builtins:
            return []
        raise SystemExit("polaris-jupyter worker: give --task-modules (modules with @task) and/or --workspace DIR")
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
    config = _config() if args.workspace else None
    engine = PgEngine(
        args.database_url, default_registry, schema=args.schema, executor_id=args.name,
        pool_size=args.concurrency, dead_after_s=args.dead_after_s, poll_s=args.poll_s, role="worker",
        default_retry=config.retry_policy() if config is not None else None,
    )
    if config is not None:
        from polaris_jupyter.runtime import PolarisRuntime

        runtime = PolarisRuntime(config, root_dir=args.workspace, engine=engine)
        host_start, host_stop = runtime.start, runtime.stop
    else:
        host_start, host_stop = engine.start, engine.stop
    await host_start()
    tasks = ", ".join(sorted(t.id for t in default_registry.all()))
    print(f"polaris-jupyter worker {engine.executor_id} ready (schema {engine.schema}; tasks: {tasks})", flush=True)
    try:
        await stop.wait()
    finally:
        log.info("worker %s stopping: handing back its running attempts", engine.executor_id)
        await host_stop()


def _config() -> PolarisConfig:
    """The worker's own settings (``POLARIS_*`` environment), as a Jupyter server reads them."""
    from polaris_jupyter.config import PolarisConfig

    return PolarisConfig()


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
    if not 0.01 <= args.poll_s <= 60:
        print("polaris-jupyter worker: --poll-interval must be between 0.01 and 60 seconds", file=sys.stderr)
        return 2
    if args.workspace is not None:
        if not os.path.isdir(args.workspace):
            print(f"polaris-jupyter worker: --workspace {args.workspace!r} is not a folder", file=sys.stderr)
            return 2
        args.workspace = os.path.abspath(args.workspace)
    _import_tasks(args.task_modules, builtins=args.workspace is not None)
    asyncio.run(run_worker(args))
    return 0


def cli(argv: Sequence[str] | None = None) -> int:
    """``polaris-jupyter <command>``: today one command, ``worker``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: polaris-jupyter worker [--task-modules mod1,mod2] [--workspace DIR] [--concurrency N] [--name ID]")
        return 0 if argv else 2
    if argv[0] != "worker":
        print(f"polaris-jupyter: unknown command {argv[0]!r}; the command is 'worker'", file=sys.stderr)
        return 2
    return main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
