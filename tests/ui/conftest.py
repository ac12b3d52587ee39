"""Fixtures for browser tests: a real ``jupyter lab`` subprocess (temp root, temp workspaces,
temp settings, the freshly built labextension, a scripted model), and Playwright driving
Debian's ``/usr/bin/chromium`` (never a downloaded browser). Screenshots go to test-artifacts/.

Tests here skip with a reason when chromium, playwright or the built extension is missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import MODEL_ENV

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
BUILT_EXTENSION = REPO / "polaris_jupyter" / "labextension"
WIDGET_STATIC = REPO / "polaris_jupyter" / "kernel" / "static"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "x"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _skip_reason() -> str | None:
    if not CHROMIUM.exists():
        return "Debian chromium is not installed (/usr/bin/chromium): apt-get install -y chromium"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed"
    if not (BUILT_EXTENSION / "package.json").exists():
        return "the labextension is not built: cd labextension && npm ci && npm run build:prod"
    return None


@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """Override pytest-jupyter's autouse loop: it adopts the current loop, which inside these
    tests is Playwright's (running in its greenlet), and then fails to close it."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> Iterator[None]:
    """Override pytest-jupyter's autouse in-process server cleanup: these tests run no in-process
    server, and its run_until_complete cannot run while Playwright's loop is running."""
    yield


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def browser_requirements() -> None:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)


# ---- scripted model ------------------------------------------------------------------------


@dataclass
class ScriptedModelProcess:
    """``python -m polaris_jupyter.testing`` in a subprocess (the lab server calls it over HTTP)."""

    script: list[dict[str, Any]]
    workdir: Path
    proc: subprocess.Popen[str] | None = None
    base_url: str = ""
    extra_args: list[str] = field(default_factory=list)

    def start(self, timeout_s: float = 30) -> ScriptedModelProcess:
        script_path = self.workdir / "model-script.json"
        # The chat turn's replies are the chat route's: ghost text asked for while a test types
        # in an editor gets the default reply, never the turn's scripted tool call.
        responses = [{"route": "chat", **entry} for entry in self.script]
        script_path.write_text(json.dumps({"responses": responses, "repeat": True}))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "polaris_jupyter.testing", "--port", "0", "--script", str(script_path), *self.extra_args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            match = re.search(r"listening on (\S+)", line)
            if match:
                self.base_url = match.group(1)
                return self
        self.stop()
        raise RuntimeError("the scripted model server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()


DEFAULT_SCRIPT: list[dict[str, Any]] = [
    {"text": "Hello from the **scripted** model. Here is `code` and a list:\n\n- one\n- two\n", "delay_s": 0.02},
]


@pytest.fixture(scope="module")
def scripted_model(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ScriptedModelProcess | None]:
    """A scripted model (the test module's ``MODEL_SCRIPT``, replies in order, then again from
    the start), or None where polaris_jupyter.testing cannot run (the lab still starts)."""
    script = getattr(request.module, "MODEL_SCRIPT", DEFAULT_SCRIPT)
    extra_args = list(getattr(request.module, "MODEL_ARGS", []))
    try:
        model = ScriptedModelProcess(script, tmp_path_factory.mktemp("model"), extra_args=extra_args).start()
    except (OSError, RuntimeError):
        yield None
        return
    yield model
    model.stop()


# ---- jupyter lab ----------------------------------------------------------------------------


@dataclass
class LabServer:
    """A real ``jupyter lab`` on a free port with temp root, workspaces, settings and data dirs."""

    base: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def log_path(self) -> Path:
        return self.base / "lab.log"

    def lab_url(self, path: str = "lab") -> str:
        return f"{self.url}/{path}?token={TOKEN}"

    def start(self, timeout_s: float = 90) -> LabServer:
        for name in ("root", "workspaces", "settings", "config", "data", "runtime", "labext"):
            (self.base / name).mkdir(parents=True, exist_ok=True)
        # No "get news?" toast over the screenshots, no update checks.
        notification = self.base / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
        notification.parent.mkdir(parents=True, exist_ok=True)
        notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        # Serve the freshly built extension first, whatever is installed in the environment.
        link = self.base / "labext" / "polaris-jupyter"
        if not link.exists():
            link.symlink_to(BUILT_EXTENSION, target_is_directory=True)
        env = {k: v for k, v in os.environ.items() if k not in MODEL_ENV}
        env.update(
            PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
            JUPYTER_CONFIG_DIR=str(self.base / "config"),
            JUPYTER_RUNTIME_DIR=str(self.base / "runtime"),
            POLARIS_DB_PATH=str(self.base / "polaris.db"),
        )
        env.update(self.env)
        args = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--allow-root",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.token={TOKEN}",
            # Enabled here too, so the tests do not depend on how the package was installed.
            "--ServerApp.jpserver_extensions=polaris_jupyter=True",
            f"--ServerApp.root_dir={self.root}",
            f"--LabApp.workspaces_dir={self.base / 'workspaces'}",
            f"--LabApp.user_settings_dir={self.base / 'settings'}",
            f"--LabApp.extra_labextensions_path={self.base / 'labext'}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
        ]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=self.root)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited early:\n{self.log_tail()}")
            # Ready when the Polaris engine answers too: it starts after Jupyter does, and
            # answers 503 until then.
            if self.get("/api/status")[0] == 200 and self.get("/polaris/api/v1/tasks")[0] == 200:
                return self
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"jupyter lab did not become ready:\n{self.log_tail()}")

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path, data=data, method=method,
            headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            return exc.code, None
        except (OSError, ValueError):
            return 0, None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if hasattr(self, "_log"):
            self._log.close()


@pytest.fixture(scope="module")
def lab_server(
    request: pytest.FixtureRequest,
    browser_requirements: None,
    tmp_path_factory: pytest.TempPathFactory,
    scripted_model: ScriptedModelProcess | None,
    artifacts_dir: Path,
) -> Iterator[LabServer]:
    # Tool calls apply at once unless the module is about approvals (PERMISSION_MODE = "ask").
    env: dict[str, str] = {"POLARIS_PERMISSION_MODE": getattr(request.module, "PERMISSION_MODE", "auto")}
    if scripted_model is not None:
        env["POLARIS_LOCAL_BASE_URL"] = scripted_model.base_url
        env["POLARIS_PROVIDER"] = "local"
    base = tmp_path_factory.mktemp("lab")
    # A test module may define tasks for the server: TASK_MODULE = "<python source>".
    task_source = getattr(request.module, "TASK_MODULE", None)
    if task_source:
        (base / "tasks").mkdir()
        (base / "tasks" / "ui_tasks.py").write_text(task_source)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(base / "tasks"), str(REPO), os.environ.get("PYTHONPATH", "")) if p)
        env["POLARIS_TASK_MODULES"] = "ui_tasks"
        # And one that fails to import (BROKEN_TASK_MODULE = "<python source>"): the others still load.
        broken_source = getattr(request.module, "BROKEN_TASK_MODULE", None)
        if broken_source:
            (base / "tasks" / "ui_broken_tasks.py").write_text(broken_source)
            env["POLARIS_TASK_MODULES"] = "ui_tasks,ui_broken_tasks"
    server = LabServer(base, env=env).start()
    yield server
    server.stop()
    shutil.copy(server.log_path, artifacts_dir / f"lab-{server.port}.log")


# ---- browser --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser(browser_requirements: None) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    except Exception:
        playwright.stop()
        raise
    yield chromium
    chromium.close()
    playwright.stop()


@dataclass
class PageLog:
    """Console errors and uncaught page errors seen by a page."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def unexpected(self, allow: tuple[str, ...] = ()) -> list[str]:
        """Errors other than those matching an ``allow`` regex (e.g. expected 404s)."""
        errors = self.console_errors + self.page_errors
        return [e for e in errors if not any(re.search(pattern, e) for pattern in allow)]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest, artifacts_dir: Path) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    log = PageLog()
    page.on("console", lambda msg: log.console_errors.append(f"{msg.text} @ {msg.location.get('url', '')}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: log.page_errors.append(str(exc)))
    page.polaris_log = log
    yield page
    if request.node.stash.get(_CALL_FAILED, False):  # what the browser showed when the test failed
        page.screenshot(path=str(artifacts_dir / f"FAILED-{request.node.name}.png"))
        (artifacts_dir / f"FAILED-{request.node.name}.log").write_text("\n".join(log.console_errors + log.page_errors))
    context.close()
