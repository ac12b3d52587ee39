"""A deterministic scripted "model" for project generation (tests, benchmarks, notebooks).

Plug it into the scripted model server as its responder: each step's first request gets the
step's forced tool call (one ``writeFile`` per file of the step, each with about
``tokens_per_file`` tokens of content that parses as its type: JSON, TOML, Python, HTML; or a
``listFiles`` for checking steps), every later request of the step a short closing sentence.
``fail_once`` injects one model failure (HTTP 500) into the named steps, to show retries::

    from polaris_jupyter.testing import ScriptedModelServer
    script = ScriptedGeneration(tokens_per_file=300, fail_once={"pages"})
    server = ScriptedModelServer.start_in_thread(responder=script)
"""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from polaris_jupyter.tasks.generate_steps import step_id_of_request
from polaris_jupyter.testing import Response, ScriptedToolCall, lorem_tokens

__all__ = ["DEFAULT_FILES", "ScriptedGeneration"]

#: The file(s) each built-in step writes in the script (other steps write ``<step>.md``): what
#: the kinds promise, so a scripted generation passes their verify step.
DEFAULT_FILES: dict[str, str | tuple[str, ...]] = {
    "config-files": ("package.json", "tsconfig.json", "vite.config.ts", "index.html"),
    "source-structure": ("src/main.tsx", "src/App.tsx", "src/index.css"),
    "components": "src/components/TaskList.tsx",
    "pages": "src/pages/HomePage.tsx",
    "hooks": "src/hooks/useTasks.ts",
    "types": "src/types/index.ts",
    "utilities": "src/utils/format.ts",
    "readme": "README.md",
    "pyproject": "pyproject.toml",
    "package-modules": "src/package/__init__.py",
    "tests": "tests/test_package.py",
}
_CHARS_PER_TOKEN = 4


class ScriptedGeneration:
    """Responder for :class:`~polaris_jupyter.testing.ScriptedModelServer` (thread-safe).

    ``calls[step_id]`` counts the requests each step made; ``started[step_id]`` /
    ``finished[step_id]`` hold ``time.perf_counter()`` of a step's first request and last reply.
    """

    def __init__(
        self,
        *,
        tokens_per_file: int = 200,
        ttft_s: float = 0.0,
        tokens_per_s: float | None = None,
        fail_once: Iterable[str] = (),
        files: Mapping[str, str | tuple[str, ...]] | None = None,
    ) -> None:
        self.tokens_per_file = max(1, tokens_per_file)
        self.ttft_s = ttft_s
        self.tokens_per_s = tokens_per_s
        self.files = dict(DEFAULT_FILES if files is None else files)
        self.calls: collections.Counter[str] = collections.Counter()
        self.started: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self._fail_pending = set(fail_once)
        self._lock = threading.Lock()

    def fail_next(self, *step_ids: str) -> None:
        """Make the next request of each of these steps fail once."""
        with self._lock:
            self._fail_pending.update(step_ids)

    def path_for(self, step_id: str) -> str:
        return self.paths_for(step_id)[0]

    def paths_for(self, step_id: str) -> tuple[str, ...]:
        paths = self.files.get(step_id, f"{step_id}.md")
        return (paths,) if isinstance(paths, str) else tuple(paths)

    def content_for(self, step_id: str, path: str) -> str:
        """About ``tokens_per_file`` tokens of deterministic text, in lines of 12 words, shaped so
        the file parses as its type (JSON, TOML, Python, HTML)."""
        words = lorem_tokens(self.tokens_per_file - 8, seed=sum(map(ord, step_id)))
        lines = ["".join(words[i:i + 12]).strip() for i in range(0, len(words), 12)]
        title = f"{path}: written by the scripted model for step {step_id}"
        if path.endswith((".json", ".ipynb")):
            return json.dumps({"name": "scripted-app", "private": True, "description": title, "notes": lines},
                              indent=2) + "\n"
        if path.endswith(".toml"):
            return (f'# {title}\n[project]\nname = "package"\nversion = "0.1.0"\n'
                    f"description = {json.dumps(' '.join(lines))}\n")
        if path.endswith(".html"):
            body = "\n".join(f"<p>{line}</p>" for line in lines)
            return (f"<!doctype html>\n<!-- {title} -->\n<html><body>\n<div id=\"root\"></div>\n{body}\n"
                    '<script type="module" src="/src/main.tsx"></script>\n</body></html>\n')
        comment = "#" if path.endswith((".py", ".toml", ".md")) else "//"
        prefix = f"{comment} " if path.endswith(".py") else ""
        return f"{comment} {title}\n" + "\n".join(prefix + line for line in lines) + "\n"

    def __call__(self, request: dict[str, Any]) -> Response:
        step_id = step_id_of_request(request) or "unknown"
        messages = request.get("messages") or []
        now = time.perf_counter()
        with self._lock:
            self.calls[step_id] += 1
            self.started.setdefault(step_id, now)
            if step_id in self._fail_pending:
                self._fail_pending.discard(step_id)
                return Response.error(500, f"injected model failure in step {step_id}")
        timing: dict[str, Any] = {"ttft_s": self.ttft_s}
        if self.tokens_per_s:
            timing["tokens_per_s"] = self.tokens_per_s
        if any(isinstance(m, dict) and m.get("role") == "tool" for m in messages):
            with self._lock:
                self.finished[step_id] = now
            return Response(text=f"Step {step_id} is done.", **timing)
        forced = _forced_tool(request)
        if forced == "listFiles":
            return Response.tool("listFiles", {"path": "."}, **timing)
        paths = _pinned_paths(request) or self.paths_for(step_id)  # a step that names its files
        calls = [ScriptedToolCall("writeFile", {"path": p, "content": self.content_for(step_id, p)}) for p in paths]
        # One SSE event per ~token, so a file streams at tokens_per_s like a real model's would.
        size = len(self.content_for(step_id, paths[0]))
        chunk_chars = max(1, size // self.tokens_per_file) if self.tokens_per_s else _CHARS_PER_TOKEN * 64
        return Response(tool_calls=calls, argument_chunk_chars=chunk_chars, **timing)


def _pinned_paths(request: dict[str, Any]) -> tuple[str, ...]:
    """The files a step's writeFile schema allows (its ``path`` enum): a model that follows the
    schema writes each of them."""
    for tool in request.get("tools") or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and function.get("name") == "writeFile":
            path = ((function.get("parameters") or {}).get("properties") or {}).get("path") or {}
            enum = path.get("enum") if isinstance(path, dict) else None
            if isinstance(enum, list) and enum:
                return tuple(p for p in enum if isinstance(p, str))
    return ()


def _forced_tool(request: dict[str, Any]) -> str | None:
    choice = request.get("tool_choice")
    if isinstance(choice, dict):
        function = choice.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return function["name"]  # type: ignore[no-any-return]
    return None
