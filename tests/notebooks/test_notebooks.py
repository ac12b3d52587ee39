"""The example notebooks run top to bottom (nbclient, a real kernel) against the scripted model,
with no API key in the kernel's environment, in a temp copy of the workspace; then we check what
they produced: the files they wrote and the runs in the kernel's store."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
#: No real model, no server: the notebooks must fall back to the scripted model and the in-kernel engine.
FOREIGN_ENV = (
    "CEREBRAS_API_KEY",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENROUTER_API_KEY",
    "POLARIS_LOCAL_BASE_URL",
    "POLARIS_PROVIDER",
    "POLARIS_MODEL",
    "POLARIS_URL",
    "POLARIS_TOKEN",
)


def run_notebook(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Any, sqlite3.Connection]:
    workspace = tmp_path / "workspace"
    shutil.copytree(NOTEBOOKS, workspace)
    for key in FOREIGN_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("POLARIS_DB_PATH", str(tmp_path / "kernel.db"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
    nb = nbformat.read(workspace / name, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(workspace)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    db = sqlite3.connect(tmp_path / "kernel.db")
    db.row_factory = sqlite3.Row
    return workspace, nb, db


def runs(db: sqlite3.Connection, task_id: str) -> list[sqlite3.Row]:
    return db.execute("SELECT * FROM runs WHERE task_id = ? ORDER BY num", (task_id,)).fetchall()


def outputs_text(nb: Any) -> str:
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(str(output.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def test_01_chat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workspace, nb, db = run_notebook("01-chat.ipynb", tmp_path, monkeypatch)
    hello = workspace / "demo" / "hello.py"
    assert hello.is_file() and hello.read_text().startswith("def greet")
    answers = runs(db, "process-message")
    assert len(answers) == 3 and {r["status"] for r in answers} == {"COMPLETED"}
    messages = db.execute("SELECT role, status, content, tool_calls FROM messages ORDER BY num").fetchall()
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3
    assert all(m["status"] == "completed" and m["content"] for m in messages)
    assert "writeFile" in messages[3]["tool_calls"]
    text = outputs_text(nb)
    assert "reverted: ['demo/hello.py']" in text and "Return a friendly greeting" in text
    assert "ChatPanel(conversation=" in text


def test_02_generate_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workspace, nb, db = run_notebook("02-generate-project.ipynb", tmp_path, monkeypatch)
    app = workspace / "todo-app"
    for rel in ("package.json", "src/App.tsx", "src/components/TaskList.tsx", "src/pages/HomePage.tsx", "README.md"):
        assert (app / rel).is_file() and (app / rel).stat().st_size > 100, rel
    (generation,) = runs(db, "generate-project")
    assert generation["status"] == "COMPLETED" and generation["attempt_count"] == 2
    text = outputs_text(nb)
    assert "COMPLETED after 2 attempt(s)" in text and "steps done: 10 / 10" in text
    assert "pages              3 model call(s)" in text and "components         2 model call(s)" in text


def test_03_background_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, nb, db = run_notebook("03-background-jobs.ipynb", tmp_path, monkeypatch)
    fetches = runs(db, "flaky-fetch")
    assert [(r["status"], r["attempt_count"]) for r in fetches] == [("COMPLETED", 3), ("FAILED", 1)]
    squares = runs(db, "square")
    assert len(squares) == 12 and {r["status"] for r in squares} == {"COMPLETED"}
    countdowns = [r["status"] for r in runs(db, "count-down")]
    assert countdowns == ["COMPLETED", "COMPLETED", "CANCELED", "CANCELED"]
    assert db.execute("SELECT COUNT(*) FROM schedules WHERE task_id = 'daily-report'").fetchone()[0] == 0
    text = outputs_text(nb)
    assert "same run: True" in text and "[1, 4, 9, 16, 25, 36, 49, 64, 81, 100]" in text


def test_04_schedule_a_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workspace, nb, db = run_notebook("04-schedule-a-notebook.ipynb", tmp_path, monkeypatch)
    notebook_runs = runs(db, "run-notebook")
    assert [r["status"] for r in notebook_runs] == ["COMPLETED", "COMPLETED"]
    for run in notebook_runs:  # each run's executed notebook (and HTML when asked) in its own folder
        assert (workspace / ".polaris" / "jobs" / run["id"] / "daily-report.ipynb").is_file()
    assert (workspace / ".polaris" / "jobs" / notebook_runs[0]["id"] / "daily-report.html").is_file()
    first = nbformat.read(workspace / ".polaris" / "jobs" / notebook_runs[0]["id"] / "daily-report.ipynb", as_version=4)
    assert "Zürich: 7 day(s), mean" in outputs_text(first)  # the parameters of the magic landed
    text = outputs_text(nb)
    assert f"Run {notebook_runs[0]['id']}: COMPLETED after 1 attempt(s)" in text
    assert "the report said: Lyon: 2 day(s), mean" in text and "cells run: 5 / 5" in text
    assert "Scheduled reports/daily-report.ipynb as notebook-daily-report-" in text and "06:00 Europe/Paris" in text
    assert "'parameters': {'days': 1}, 'outputs': ['ipynb', 'html']} options: {'maxAttempts': 3}" in text
    assert "Deleted schedule notebook-daily-report-" in text
    assert db.execute("SELECT COUNT(*) FROM schedules WHERE task_id = 'run-notebook'").fetchone()[0] == 0
