"""``%polaris`` through IPython's test shell, against an engine hosted in the test process and
the scripted model: every subcommand, the streamed single display, and bad input (a one-line
UsageError, never a traceback)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.getipython import get_ipython
from IPython.testing.globalipapp import start_ipython
from IPython.utils.capture import CapturedIO, capture_output

from polaris_jupyter.jobs import task
from polaris_jupyter.kernel import Polaris
from polaris_jupyter.kernel._render import RunsTable, TasksTable
from polaris_jupyter.testing import Response, ScriptedModelServer


@task(id="magic-test-noop")
async def noop(payload: Any, ctx: Any) -> Any:
    """Return the payload (for cancel / replay tests)."""
    return payload


@pytest.fixture
def ip(local_client: Polaris) -> Iterator[Any]:
    start_ipython()  # once per process; later calls return None
    shell = get_ipython()
    assert shell is not None
    shell.run_line_magic("load_ext", "polaris_jupyter")
    yield shell
    import ipywidgets

    for widget in list(ipywidgets.Widget.widgets.values()):
        with contextlib.suppress(KeyError):  # a comm the kernel's manager already dropped
            widget.close()


def run(ip: Any, source: str) -> tuple[Any, CapturedIO]:
    with capture_output() as io:
        result = ip.run_cell(source, store_history=False)
    return result, io


def usage_error(ip: Any, source: str) -> str:
    """Run a cell that must fail with a UsageError; returns what the user saw."""
    result, io = run(ip, source)
    assert isinstance(result.error_in_exec, UsageError), result.error_in_exec
    assert "Traceback" not in io.stdout + io.stderr
    assert io.stderr.startswith("UsageError: ")
    return io.stderr


def answer_outputs(io: CapturedIO) -> tuple[list[Any], list[Any]]:
    """(first displays, updates) of the streamed answer."""
    answers = [o for o in io.outputs if "pj-cell-answer" in str(o.data.get("text/html", ""))]
    return [o for o in answers if not o.update], [o for o in answers if o.update]


def test_ask_streams_into_one_updating_display(ip: Any, model: ScriptedModelServer) -> None:
    model.enqueue(
        Response.tool("readFile", {"path": "app.py"}),
        Response(text="`app.py` defines **greet**, which says hello. <script>alert(1)</script>", delay_s=0.02),
    )
    result, io = run(ip, "%polaris ask what does app.py do?")
    assert result.error_in_exec is None, io.stderr
    first, updates = answer_outputs(io)
    assert len(first) == 1, ("the answer must be ONE display", io.outputs, io.stdout, io.stderr)
    display_id = first[0].transient["display_id"]
    assert updates and all(u.transient["display_id"] == display_id for u in updates)
    final = updates[-1].data
    assert "greet" in final["text/plain"] and "which says hello" in final["text/plain"]
    html = final["text/html"]
    assert "<strong>greet</strong>" in html
    assert "readFile" in html and "pj-cell-tool" in html  # the tool card
    assert "<script>" not in html and "&lt;script&gt;" in html  # model HTML is escaped
    assert "pj-cell-answer-completed" in html
    # The model saw the question and the tool result.
    assert model.requests[0].messages[-1]["content"] == "what does app.py do?"


def test_cell_magic_asks_with_the_cell_body(ip: Any, model: ScriptedModelServer, local_client: Polaris) -> None:
    model.enqueue(Response(text="Two lines received."))
    result, io = run(ip, "%%polaris --new\nfirst line\nsecond line")
    assert result.error_in_exec is None, io.stderr
    first, updates = answer_outputs(io)
    assert len(first) == 1 and "Two lines received." in updates[-1].data["text/plain"]
    user = [m for m in local_client.messages() if m["role"] == "user"]
    assert [m["content"] for m in user] == ["first line\nsecond line"]


def test_ask_with_a_file_as_context(ip: Any, model: ScriptedModelServer, local_client: Polaris) -> None:
    model.enqueue(Response(text="ok"))
    result, io = run(ip, "%polaris ask --new --file app.py what's in it?")
    assert result.error_in_exec is None, io.stderr
    user = next(m for m in local_client.messages() if m["role"] == "user")
    assert user["content"] == "what's in it?" and user["context"] == {"currentFile": "app.py"}


def test_revert_undoes_the_edits_of_an_answer(ip: Any, model: ScriptedModelServer, workspace: Path) -> None:
    original = (workspace / "app.py").read_text()
    model.enqueue(Response.tool("writeFile", {"path": "app.py", "content": "print('changed')\n"}), Response(text="Changed it."))
    result, io = run(ip, "%polaris ask change app.py")
    assert result.error_in_exec is None, io.stderr
    assert "writeFile" in answer_outputs(io)[1][-1].data["text/html"]
    assert (workspace / "app.py").read_text() == "print('changed')\n"
    table = ip.run_line_magic("polaris", "runs --task process-message --limit 1")
    run_id = table.runs[0]["id"]
    (workspace / "app.py").write_text("print('changed')\nprint('and my own line')\n")
    assert "app.py changed after this run" in usage_error(ip, f"%polaris revert {run_id}")
    assert (workspace / "app.py").read_text() == "print('changed')\nprint('and my own line')\n"
    with capture_output() as io:
        ip.run_line_magic("polaris", f"revert {run_id} --force")
    assert "Reverted 1 file(s): app.py" in io.stdout
    assert (workspace / "app.py").read_text() == original


def test_interrupt_stops_the_answer(local_client: Polaris, model: ScriptedModelServer) -> None:
    """Ctrl-C while an answer streams cancels the message; the output says it was stopped."""
    from polaris_jupyter.kernel._answer import stream_answer

    model.enqueue(Response(text=" ".join(f"w{i}" for i in range(400)), delay_s=0.02))
    conversation_id = local_client.current_conversation()
    drawn: list[Any] = []

    def update(handle: Any, state: Any) -> None:
        drawn.append(state)
        if state.content and not any(d.content for d in drawn[:-1]):
            raise KeyboardInterrupt  # what a kernel interrupt does to the waiting cell

    final = stream_answer(local_client, lambda: local_client.send("talk a lot"), conversation_id, lambda s: None, update)
    assert final.status == "cancelled" and drawn[-1].status == "cancelled"
    stored = next(m for m in local_client.messages() if m["id"] == final.message_id)
    assert stored["status"] == "cancelled"
    run = local_client.wait(stored["runId"], timeout_s=10)
    assert run["status"] == "CANCELED"


def test_retry_streams_a_new_answer(ip: Any, model: ScriptedModelServer, local_client: Polaris) -> None:
    model.enqueue(Response(text=" ".join(f"w{i}" for i in range(300)), delay_s=0.02))
    posted = local_client.send("hello")
    while not model.requests:  # stop it while the model is answering
        time.sleep(0.01)
    local_client.cancel_message(posted["messageId"])
    model.enqueue(Response(text="Second try."))
    result, io = run(ip, "%polaris retry")
    assert result.error_in_exec is None, io.stderr
    assert "Second try." in answer_outputs(io)[1][-1].data["text/plain"]
    message = next(m for m in local_client.messages() if m["id"] == posted["messageId"])
    assert message["status"] == "completed" and message["content"] == "Second try."
    assert "no failed or stopped answer" in usage_error(ip, "%polaris retry")


def test_panel_shows_the_chat_widget(ip: Any, local_client: Polaris) -> None:
    result, io = run(ip, "%polaris")
    assert result.error_in_exec is None, io.stderr
    views = [o for o in io.outputs if "application/vnd.jupyter.widget-view+json" in o.data]
    assert len(views) == 1
    import ipywidgets

    model_id = views[0].data["application/vnd.jupyter.widget-view+json"]["model_id"]
    panel = ipywidgets.Widget.widgets[model_id]
    assert type(panel).__name__ == "ChatPanel"
    assert panel.conversation_id == local_client.current_conversation()
    assert panel.conversations and panel._esm.strip().startswith(("function", "var", "import", "export", "const", "let"))


def test_runs_table_and_filters(ip: Any, local_client: Polaris) -> None:
    done = local_client.trigger("magic-test-noop", {"n": 1})
    done.wait(10)
    delayed = local_client.trigger("magic-test-noop", {"n": 2}, delay="1h")
    table = ip.run_line_magic("polaris", "runs")
    assert isinstance(table, RunsTable)
    assert {r["id"] for r in table.runs} >= {done.id, delayed.id}
    only = ip.run_line_magic("polaris", "runs --status DELAYED --task magic-test-noop --limit 5")
    assert [r["id"] for r in only.runs] == [delayed.id]
    assert "DELAYED" in only._repr_html_() and delayed.id in repr(only)
    assert "unknown status 'NOPE'" in usage_error(ip, "%polaris runs --status NOPE")
    assert "No runs." in repr(ip.run_line_magic("polaris", "runs --tag no-such-tag"))


def test_run_cancel_replay(ip: Any, local_client: Polaris) -> None:
    delayed = local_client.trigger("magic-test-noop", {"n": 3}, delay="1h")
    with capture_output() as io:
        ip.run_line_magic("polaris", f"run {delayed.id}")
        ip.run_line_magic("polaris", f"cancel {delayed.id}")
    assert "DELAYED" in io.stdout and f"Run {delayed.id} is CANCELED" in io.stdout
    assert local_client.run(delayed.id)["status"] == "CANCELED"
    with capture_output() as io:
        ip.run_line_magic("polaris", f"replay {delayed.id}")
    new_id = io.stdout.strip().rsplit(" ", 1)[-1]
    replayed = local_client.wait(new_id, timeout_s=10)
    assert replayed["status"] == "COMPLETED" and replayed["output"] == {"n": 3}
    assert replayed["replayedFrom"] == delayed.id
    assert "no run with id 'run_nope'" in usage_error(ip, "%polaris cancel run_nope")
    assert "no run with id" in usage_error(ip, "%polaris replay run_nope")
    assert "no run with id" in usage_error(ip, "%polaris revert run_nope")


def test_tasks_model_config_new(ip: Any, local_client: Polaris, model: ScriptedModelServer) -> None:
    tasks = ip.run_line_magic("polaris", "tasks")
    assert isinstance(tasks, TasksTable) and "process-message" in repr(tasks) and "magic-test-noop" in tasks._repr_html_()
    with capture_output() as io:
        ip.run_line_magic("polaris", "model")
        ip.run_line_magic("polaris", "model scripted-2")
    assert "Model: local · scripted-1" in io.stdout and "Model: local · scripted-2" in io.stdout
    model.enqueue(Response(text="hi"))
    assert local_client.ask("hello")["model"] == "scripted-2"
    assert "not configured" in usage_error(ip, "%polaris model --provider cerebras x")
    result, io = run(ip, "%polaris config")
    bundle = io.outputs[-1].data
    assert "local: engine in this kernel" in bundle["text/plain"] and "cerebras" in bundle["text/html"]
    before = local_client.current_conversation()
    with capture_output() as io:
        ip.run_line_magic("polaris", "new Refactoring ideas")
    assert local_client.current_conversation() != before
    assert any(c["title"] == "Refactoring ideas" for c in local_client.conversations())


def test_help(ip: Any) -> None:
    for source in ("%polaris help", "%polaris --help"):
        result, io = run(ip, source)
        assert result.error_in_exec is None and "%polaris generate" in io.stdout
    result, io = run(ip, "%polaris?")
    assert "%polaris runs" in io.stdout


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("%polaris frobnicate", "unknown subcommand 'frobnicate'"),
        ("%polaris ask", "what is the question"),
        ("%polaris ask --bogus hi", "unknown option --bogus"),
        ("%polaris ask --file", "--file needs a path"),
        ("%polaris runs --limit many", "invalid number between 1 and 500 value"),
        ("%polaris runs --limit 0", "invalid number between 1 and 500 value"),
        ("%polaris runs --frob", "unrecognized arguments: --frob"),
        ('%polaris runs --task "unclosed', "check the quotes"),
        ("%polaris cancel", "the following arguments are required: run_id"),
        ("%polaris cancel a b", "unrecognized arguments: b"),
        ("%polaris generate", "the following arguments are required: description"),
        ('%polaris generate "   "', "describe the project"),
        ("%polaris replay", "required: run_id"),
        ("%%polaris something\nquestion", "takes only --new"),
        ("%%polaris\n   ", "what is the question"),
    ],
)
def test_bad_input_gives_a_usage_message(ip: Any, source: str, says: str) -> None:
    shown = usage_error(ip, source)
    assert says in shown, shown


def test_generate_shows_progress_and_refuses_bad_input(ip: Any, local_client: Polaris, workspace: Path) -> None:
    pytest.importorskip("polaris_jupyter.tasks.generate")
    assert "unknown" in usage_error(ip, '%polaris generate "a todo app" --kind no-such-kind').lower()
    assert "outside" in usage_error(ip, '%polaris generate "a todo app" --path ../elsewhere').lower()
    (workspace / "busy").mkdir()
    (workspace / "busy" / "keep.txt").write_text("x")
    assert "not empty" in usage_error(ip, '%polaris generate "a todo app" --path busy').lower()


def test_terminal_ipython_prints_the_answer_once(ip: Any, model: ScriptedModelServer) -> None:
    """In a terminal, updating a display would print the answer again and again: print the text
    as it grows instead, with a line per tool call."""
    from IPython.core.displaypub import DisplayPublisher

    model.enqueue(Response.tool("readFile", {"path": "app.py"}), Response(text="It greets **people**.", delay_s=0.01))
    saved = ip.display_pub
    ip.display_pub = DisplayPublisher(shell=ip)
    try:
        with capture_output(display=False) as io:
            ip.run_line_magic("polaris", "ask --new what does app.py do")
    finally:
        ip.display_pub = saved
    assert io.stdout.count("It greets **people**.") == 1
    assert io.stdout.startswith("Polaris:") and "[succeeded] readFile" in io.stdout
