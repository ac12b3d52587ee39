"""``%polaris`` / ``%%polaris``: the notebook face of Polaris (``%load_ext polaris_jupyter``).

Heavy modules (client, widgets, the engine) are imported on first use, so loading the extension
costs nothing. Bad input never shows a traceback: it raises :class:`UsageError`, which IPython
prints as one line plus the usage.
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

if TYPE_CHECKING:
    from polaris_jupyter.kernel.client import Polaris

__all__ = ["USAGE", "PolarisMagics", "register_magics"]

USAGE = """\
%polaris                       show the chat panel for the current conversation
%polaris ask QUESTION          ask Polaris; the answer streams into this cell's output
%%polaris                      (cell magic) ask with the whole cell as the question
    ask/%%polaris options:     --new (start a new conversation)  --file PATH (send a file as context)
%polaris retry [MESSAGE_ID]    retry the last failed or stopped answer (or the given one)
%polaris new [TITLE]           start a new conversation
%polaris generate "DESCRIPTION" [--kind react-vite] [--path app/] [--overwrite] [--wait]
                               generate a project, with live progress
%polaris runs [--status S] [--task T] [--tag TAG] [--limit N]
                               recent runs as a table (S may list several: FAILED,CRASHED)
%polaris run ID                one run: status, attempts, output or error, logs
%polaris cancel ID             cancel a run
%polaris replay ID [--resume]  run it again with the same payload
%polaris revert ID [--force]   undo the file edits a run made (--force: even files changed since)
%polaris tasks                 the tasks the engine knows (yours from @task included)
%polaris run-notebook PATH [--param NAME=VALUE ...] [--output html] [--wait] [...]
                               run a notebook as a background job (papermill, a fresh kernel)
%polaris schedule PATH "CRON" [--tz ZONE] [--param NAME=VALUE ...] [--output html] [...]
                               run a notebook on a cron schedule; also: schedule list, schedule delete ID
%polaris model [NAME] [--provider P]
                               show or set the model (and provider)
%polaris mode [ask|auto-edit|auto|plan]
                               show or set what this conversation's tool calls may do without asking
%polaris approvals             tool calls waiting for your approval; %polaris approve ID [--run], deny ID
%polaris config                where the engine runs and which model providers are configured
%polaris help                  this text (also: %polaris?)

Interrupt the kernel (■) to stop an answer that is streaming into a cell."""

SUBCOMMANDS = ("ask", "retry", "new", "generate", "runs", "run", "cancel", "replay", "revert", "tasks", "run-notebook",
               "schedule", "model", "mode", "approvals", "approve", "deny", "config", "help")


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"%polaris {self.prog.split()[-1]}: {message}\n\nUsage:\n{USAGE}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise UsageError(message or USAGE)


def _parser(name: str, *arguments: tuple[tuple[str, ...], dict[str, Any]]) -> _Parser:
    parser = _Parser(prog=f"%polaris {name}", add_help=False, allow_abbrev=False)
    for flags, kwargs in arguments:
        parser.add_argument(*flags, **kwargs)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 500:
        raise ValueError("must be between 1 and 500")
    return value


_positive_int.__name__ = "number between 1 and 500"

_PARSERS: dict[str, _Parser] = {
    "generate": _parser(
        "generate",
        (("description",), {}),
        (("--kind",), {"default": "react-vite"}),
        (("--path",), {"default": "app"}),
        (("--overwrite",), {"action": "store_true"}),
        (("--wait",), {"action": "store_true"}),
    ),
    "runs": _parser(
        "runs",
        (("--status",), {}),
        (("--task",), {}),
        (("--tag",), {}),
        (("--limit",), {"type": _positive_int, "default": 20}),
    ),
    "run": _parser("run", (("run_id",), {})),
    "cancel": _parser("cancel", (("run_id",), {})),
    "replay": _parser("replay", (("run_id",), {}), (("--resume",), {"action": "store_true"})),
    "revert": _parser("revert", (("run_id",), {}), (("--force",), {"action": "store_true"})),
    "retry": _parser("retry", (("message_id",), {"nargs": "?"})),
    "new": _parser("new", (("title",), {"nargs": "*"})),
    "tasks": _parser("tasks"),
    "config": _parser("config"),
    "help": _parser("help"),
    "model": _parser("model", (("name",), {"nargs": "?"}), (("--provider",), {})),
}


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"%polaris: cannot parse the arguments ({exc}); check the quotes") from None


def _ask_options(text: str) -> tuple[dict[str, Any], str]:
    """Leading ``--new`` / ``--file PATH`` of an ask; the rest is the question, verbatim."""
    options: dict[str, Any] = {"new": False, "file": None}
    rest = text.strip()
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        rest = rest.strip()
        if flag == "--new":
            options["new"] = True
        elif flag == "--file":
            path, _, rest = rest.partition(" ")
            if not path:
                raise UsageError("%polaris ask: --file needs a path, e.g. --file src/app.py")
            options["file"] = path
            rest = rest.strip()
        elif flag == "--":
            break
        else:
            raise UsageError(f"%polaris ask: unknown option {flag}; use --new or --file PATH")
    return options, rest


@magics_class
class PolarisMagics(Magics):
    """The ``%polaris`` line and cell magic."""

    @line_cell_magic
    def polaris(self, line: str, cell: str | None = None) -> Any:
        try:
            return self._dispatch(line, cell)
        except UsageError:
            raise
        except Exception as exc:
            from polaris_jupyter.kernel.client import PolarisError

            if isinstance(exc, (PolarisError, TimeoutError)):
                raise UsageError(f"Polaris: {exc}") from None
            raise

    polaris.__doc__ = f"Polaris, the AI coding assistant whose every operation is a background job.\n\n{USAGE}"

    def _client(self) -> Polaris:
        from polaris_jupyter.kernel.client import get_client

        return get_client()

    def _dispatch(self, line: str, cell: str | None) -> Any:
        if cell is not None:
            options, head = _ask_options(line)
            if head and head.split()[0] == "ask":
                options, _ = _ask_options(head[3:])
            elif head:
                raise UsageError(f"%%polaris takes only --new / --file PATH on its first line, got {head!r}\n\nUsage:\n{USAGE}")
            return self._ask(cell.strip(), options)
        name, _, rest = line.strip().partition(" ")
        if not name:
            return self._panel()
        if name in ("help", "-h", "--help", "?"):
            print(USAGE)
            return None
        if name == "ask":
            options, question = _ask_options(rest)
            return self._ask(question, options)
        if name in ("run-notebook", "schedule"):  # notebooks as background jobs: notebook_magics.py
            from polaris_jupyter.kernel.notebook_magics import run_subcommand

            return run_subcommand(self._client, name, rest)
        if name in ("mode", "approvals", "approve", "deny"):  # permission modes and approvals: approval_magics.py
            from polaris_jupyter.kernel.approval_magics import run_subcommand as run_approval_subcommand

            return run_approval_subcommand(self._client, name, rest)
        if name not in _PARSERS:
            raise UsageError(f"%polaris: unknown subcommand {name!r}; use one of {', '.join(SUBCOMMANDS)}\n\nUsage:\n{USAGE}")
        args = _PARSERS[name].parse_args(_split(rest))
        handler: Callable[[argparse.Namespace], Any] = getattr(self, f"_cmd_{name}")
        return handler(args)

    # -- chat ------------------------------------------------------------------------------------
    def _panel(self) -> None:
        from IPython.display import display

        display(self._client().chat_panel())

    def _ask(self, question: str, options: dict[str, Any]) -> None:
        if not question:
            raise UsageError("%polaris ask: what is the question? e.g. %polaris ask what does app.py do?")
        client = self._client()
        if options["new"]:
            client.new_conversation()
        context = {"currentFile": options["file"]} if options["file"] else None
        conversation_id = client.current_conversation()
        _stream(self.shell, client, lambda: client.send(question, context=context, conversation_id=conversation_id), conversation_id)

    def _cmd_retry(self, args: argparse.Namespace) -> None:
        client = self._client()
        conversation_id = client.current_conversation()
        message_id = args.message_id
        if message_id is None:
            retryable = [m for m in client.messages(conversation_id) if m["role"] == "assistant" and m["status"] in ("failed", "cancelled")]
            if not retryable:
                raise UsageError("%polaris retry: no failed or stopped answer in the current conversation")
            message_id = retryable[-1]["id"]
        _stream(self.shell, client, lambda: client.retry_message(message_id), conversation_id, message_id)

    def _cmd_new(self, args: argparse.Namespace) -> None:
        conversation = self._client().new_conversation(" ".join(args.title) or None)
        print(f"New conversation {conversation['id']}")

    # -- generation ------------------------------------------------------------------------------
    def _cmd_generate(self, args: argparse.Namespace) -> None:
        from IPython.display import display

        if not args.description.strip():
            raise UsageError('%polaris generate: describe the project, e.g. %polaris generate "a todo app"')
        client = self._client()
        run = client.generate(args.description, kind=args.kind, path=args.path, overwrite=args.overwrite)
        widget = client.progress(run.id)
        display(widget)
        if args.wait:
            final = run.wait()
            print(f"Generation {run.id}: {final['status']}")

    # -- runs ------------------------------------------------------------------------------------
    def _cmd_runs(self, args: argparse.Namespace) -> Any:
        from polaris_jupyter.kernel._render import RunsTable

        return RunsTable(self._client().runs(status=args.status, task=args.task, tag=args.tag, limit=args.limit))

    def _cmd_run(self, args: argparse.Namespace) -> None:
        import json

        run = self._client().run(args.run_id)
        print(f"{run['id']}  {run['taskId']}  {run['status']}  attempts {run['attemptCount']}/{run.get('maxAttempts')}")
        if run.get("waitingReason"):
            print(f"waiting: {run['waitingReason']}")
        if run.get("error"):
            print(f"error: {run['error'].get('message') if isinstance(run['error'], dict) else run['error']}")
        if run.get("output") is not None:
            print("output:", json.dumps(run["output"], default=str)[:2000])
        for entry in run.get("logs") or []:
            print(f"  [{entry.get('level')}] {entry.get('message')}")

    def _cmd_cancel(self, args: argparse.Namespace) -> None:
        run = self._client().cancel(args.run_id)
        print(f"Run {run['id']} is {run['status']}")

    def _cmd_replay(self, args: argparse.Namespace) -> None:
        new = self._client().replay(args.run_id, resume=args.resume)
        print(f"Replayed {args.run_id} as {new.id}")

    def _cmd_revert(self, args: argparse.Namespace) -> None:
        paths = self._client().revert(args.run_id, force=args.force)
        print(f"Reverted {len(paths)} file(s): {', '.join(paths)}" if paths else f"Run {args.run_id} made no file edits to revert")

    def _cmd_tasks(self, args: argparse.Namespace) -> Any:
        from polaris_jupyter.kernel._render import TasksTable

        return TasksTable(self._client().tasks())

    # -- config ----------------------------------------------------------------------------------
    def _cmd_model(self, args: argparse.Namespace) -> None:
        client = self._client()
        if args.name or args.provider:
            config = client.set_model(args.name, provider=args.provider)
        else:
            config = client.config()
        active = config.get("active") or {}
        print(f"Model: {active.get('provider') or '-'} · {active.get('model') or '-'}")
        if config.get("error"):
            print(f"Problem: {config['error']}")

    def _cmd_config(self, args: argparse.Namespace) -> None:
        from IPython.display import display

        from polaris_jupyter.kernel._render import config_bundle

        client = self._client()
        display(config_bundle(client.config(), f"{client.mode}: {client.description}"), raw=True)

    def _cmd_help(self, args: argparse.Namespace) -> None:
        print(USAGE)


def _stream(
    shell: Any, client: Polaris, post: Callable[[], dict[str, Any]], conversation_id: str, message_id: str | None = None,
    *, resume: bool = False,
) -> None:
    from IPython.core.displaypub import DisplayPublisher
    from IPython.display import display

    from polaris_jupyter.kernel._answer import stream_answer
    from polaris_jupyter.kernel._render import TerminalAnswer, answer_bundle

    if type(getattr(shell, "display_pub", None)) is DisplayPublisher:
        # A terminal: updating a display would print the whole answer again each time.
        terminal = TerminalAnswer()
        stream_answer(client, post, conversation_id, terminal.show, terminal.update, message_id, resume=resume)
        return

    def show(state: Any) -> Any:
        return display(answer_bundle(state), raw=True, display_id=True)

    def update(handle: Any, state: Any) -> None:
        if handle is not None:
            handle.update(answer_bundle(state), raw=True)

    stream_answer(client, post, conversation_id, show, update, message_id, resume=resume)


_registered: set[int] = set()
_reported: set[str] = set()


def register_magics(ipython: Any) -> None:
    """Register ``%polaris`` and, once a client exists, offer cell-defined tasks after each cell."""
    ipython.register_magics(PolarisMagics)
    if id(ipython) in _registered:
        return
    _registered.add(id(ipython))
    ipython.events.register("post_run_cell", _offer_kernel_tasks)
    cleanup = getattr(ipython, "input_transformers_cleanup", None)
    if cleanup is not None and protect_questions not in cleanup:
        cleanup.append(protect_questions)


_ASK_LINE = re.compile(r"^([ \t]*)%polaris[ \t]+(ask\b.*?\?)[ \t]*$")


def protect_questions(lines: list[str]) -> list[str]:
    """``%polaris ask what does it do?``: IPython reads a trailing ``?`` as a help request; a
    question is not one, so such lines become the explicit magic call before IPython sees them."""
    if lines and lines[0].lstrip().startswith("%%"):
        return lines
    out = []
    for line in lines:
        match = _ASK_LINE.match(line.rstrip("\r\n"))
        if match:
            line = f"{match.group(1)}get_ipython().run_line_magic('polaris', {match.group(2)!r})\n"
        out.append(line)
    return out


def _offer_kernel_tasks(result: Any = None) -> None:
    """After a cell ran: if it defined ``@task``s and a server is connected, claim them."""
    import os

    if not os.environ.get("POLARIS_URL"):
        return
    from polaris_jupyter.jobs import default_registry
    from polaris_jupyter.kernel import client as client_module

    if not default_registry.all():
        return
    try:
        polaris = client_module.get_client()
        if polaris.mode == "remote":
            polaris.serve_tasks()
    except Exception as exc:  # never break the user's cell for this; say it once
        if str(exc) not in _reported:
            _reported.add(str(exc))
            print(f"Polaris: could not offer this kernel's tasks to the server: {exc}")
