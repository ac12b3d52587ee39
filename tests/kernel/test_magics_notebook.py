"""``%polaris run-notebook`` and ``%polaris schedule`` through IPython's test shell, against an
engine hosted in the test process: the payload a command line builds, schedules created, updated
(not duplicated) by a re-run cell, listed and deleted, a notebook run with its parameters in a
real kernel, and bad input as a one-line UsageError."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from IPython.core.getipython import get_ipython
from IPython.testing.globalipapp import start_ipython
from IPython.utils.capture import capture_output

from polaris_jupyter.kernel import Polaris
from polaris_jupyter.kernel.notebook_magics import SchedulesTable, default_schedule_id, parse_param
from tests.kernel.test_magics import run, usage_error
from tests.tasks.conftest import write_notebook


@pytest.fixture
def ip(local_client: Polaris, workspace: Path) -> Iterator[Any]:
    start_ipython()
    shell = get_ipython()
    assert shell is not None
    shell.run_line_magic("load_ext", "polaris_jupyter")
    write_notebook(workspace, "reports/daily.ipynb", "print(f'{city}: {n * 2}')", parameters="n = 1\ncity = 'Paris'")
    yield shell


def notebook_schedules(client: Polaris) -> list[dict[str, Any]]:
    return [s for s in client.schedules() if s["taskId"] == "run-notebook"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("n=3", ("n", 3)),
        ("ratio=0.5", ("ratio", 0.5)),
        ("city=Paris", ("city", "Paris")),
        ("city='Paris'", ("city", "Paris")),
        ("day=2026-01-31", ("day", "2026-01-31")),
        ("items=[1, (2, 3)]", ("items", [1, [2, 3]])),
        ("flags={'a': True, 'b': None}", ("flags", {"a": True, "b": None})),
        ("empty=", ("empty", "")),
        ("note=a=b", ("note", "a=b")),
    ],
)
def test_a_param_value_is_a_python_literal_or_text(text: str, expected: tuple[str, Any]) -> None:
    assert parse_param(text) == expected


def test_schedule_creates_updates_lists_and_deletes(ip: Any, local_client: Polaris) -> None:
    line = 'schedule reports/daily.ipynb "0 6 * * *" --tz Europe/Paris --param n=3 --param city=Lyon --output html --max-attempts 2'
    with capture_output() as io:
        ip.run_line_magic("polaris", line)
    (created,) = notebook_schedules(local_client)
    assert created["id"] == default_schedule_id("reports/daily.ipynb", "0 6 * * *", "Europe/Paris")
    assert (created["cron"], created["timezone"]) == ("0 6 * * *", "Europe/Paris")
    assert created["payload"] == {"path": "reports/daily.ipynb", "parameters": {"n": 3, "city": "Lyon"}, "outputs": ["ipynb", "html"]}
    assert created["options"] == {"maxAttempts": 2}
    assert f"Scheduled reports/daily.ipynb as {created['id']}: 0 6 * * * Europe/Paris, next run " in io.stdout
    assert "06:00 Europe/Paris" in io.stdout and 'parameters: n=3, city="Lyon"' in io.stdout
    assert "fires only while this kernel runs" in io.stdout  # the in-kernel engine says so

    # The same cell run again with other parameters updates that schedule; an unquoted cron works.
    with capture_output() as io:
        ip.run_line_magic("polaris", "schedule reports/daily.ipynb 0 6 * * * --tz Europe/Paris --param n=4")
    (updated,) = notebook_schedules(local_client)
    assert updated["id"] == created["id"] and updated["payload"] == {"path": "reports/daily.ipynb", "parameters": {"n": 4}}
    assert io.stdout.startswith(f"Updated reports/daily.ipynb as {created['id']}")

    table = ip.run_line_magic("polaris", "schedule list")
    assert isinstance(table, SchedulesTable)
    (row,) = [r for r in table.rows() if r[0] == created["id"]]
    assert row[1:3] == ("run-notebook", "0 6 * * * Europe/Paris") and row[3].endswith("06:00 Europe/Paris")
    assert row[5] == "reports/daily.ipynb  n=4"
    assert created["id"] in repr(table) and f"<code>{created['id']}</code>" in table._repr_html_()

    with capture_output() as io:
        ip.run_line_magic("polaris", f"schedule delete {created['id']}")
    assert io.stdout == f"Deleted schedule {created['id']}\n" and not notebook_schedules(local_client)
    assert f"no schedule with id '{created['id']}'" in usage_error(ip, f"%polaris schedule delete {created['id']}")


@pytest.mark.slow
def test_run_notebook_runs_it_with_its_parameters(ip: Any, workspace: Path) -> None:
    result, io = run(ip, "%polaris run-notebook reports/daily.ipynb --param n=21 --param city=Zürich --output html --wait")
    assert result.error_in_exec is None, io.stderr
    first, status, ipynb, html = io.stdout.splitlines()
    run_id = first.split()[1].rstrip(":")
    assert first == f"Run {run_id}: reports/daily.ipynb in the background; outputs go to .polaris/jobs/{run_id}/"
    assert status == f"Run {run_id}: COMPLETED after 1 attempt(s)"
    assert ipynb == f"  ipynb: .polaris/jobs/{run_id}/daily.ipynb" and html == f"  html: .polaris/jobs/{run_id}/daily.html"
    executed = nbformat.read(workspace / ".polaris" / "jobs" / run_id / "daily.ipynb", as_version=4)
    assert "".join(o.get("text", "") for o in executed.cells[-1].outputs) == "Zürich: 42\n"


def test_run_notebook_without_wait_says_how_to_follow_the_run(ip: Any, local_client: Polaris) -> None:
    result, io = run(ip, "%polaris run-notebook reports/daily.ipynb --max-attempts 1 --timeout 30")
    assert result.error_in_exec is None, io.stderr
    run_id = io.stdout.split()[1].rstrip(":")
    assert f"Follow it with %polaris run {run_id}" in io.stdout
    details = local_client.run(run_id)
    assert details["payload"] == {"path": "reports/daily.ipynb", "timeoutS": 30.0} and details["maxAttempts"] == 1
    local_client.cancel(run_id)


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("%polaris schedule", "which notebook?"),
        ("%polaris run-notebook", "which notebook?"),
        ("%polaris schedule reports/daily.ipynb", "the following arguments are required: cron"),
        ('%polaris schedule reports/daily.ipynb "0 6 * * *" --param 3x=1', "a parameter name is a Python identifier"),
        ('%polaris schedule reports/daily.ipynb "0 6 * * *" --param n', "--param needs NAME=VALUE"),
        ('%polaris schedule reports/daily.ipynb "0 6 * * *" --param s={{1,2}}', "a set has no JSON form"),
        ('%polaris schedule reports/daily.ipynb "0 6 * * *" --output pdf', "the formats are ipynb and html"),
        ('%polaris schedule reports/daily.ipynb "0 6 * * *" --max-attempts 0', "invalid number of attempts"),
        ('%polaris schedule reports/daily.ipynb "0 6 * * *" --tz Mars/Olympus', "unknown time zone 'Mars/Olympus'"),
        ('%polaris schedule reports/daily.ipynb "0 6 * *"', "cron must have 5 fields"),
        ('%polaris schedule reports/nope.ipynb "0 6 * * *"', "path: 'reports/nope.ipynb' does not exist"),
        ("%polaris run-notebook reports/daily.ipynb --timeout -1", "invalid positive number of seconds"),
        ("%polaris run-notebook app.py", "is not a notebook"),
        ("%polaris schedule delete", "%polaris schedule delete: the following arguments are required: schedule_id"),
        ("%polaris schedule list extra", "%polaris schedule list: unrecognized arguments: extra"),
    ],
)
def test_bad_input_is_a_one_line_usage_error(ip: Any, local_client: Polaris, source: str, words: str) -> None:
    assert words in usage_error(ip, source)
    assert not notebook_schedules(local_client)
