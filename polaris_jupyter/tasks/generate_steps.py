"""One model step of a generation: prompt, tool loop on the target folder, files it wrote.

The step's tools are the file tools only, with a :class:`ToolContext` rooted at the target
folder: the sandbox resolves every model path against that folder, so a step cannot read or
write outside it. Edits are journalled with workspace-relative paths (``app/src/App.tsx``),
so the run's revert route undoes a generation like any other run.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import posixpath
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from polaris_jupyter.tools.base import EditRecorder, ToolContext, ToolError, ToolRegistry

if TYPE_CHECKING:
    from polaris_jupyter.agent import LoopEvent, ProviderChain
    from polaris_jupyter.tasks.generate_target import Target
    from polaris_jupyter.tasks.project_kinds import ProjectKind, Step

__all__ = [
    "STEP_MARKER",
    "FileInfo",
    "PrefixedJournal",
    "StepError",
    "StepOutcome",
    "build_messages",
    "run_model_step",
    "step_id_of_request",
    "structure_summary",
]

#: The user message of every step carries this line, so scripted servers can tell steps apart.
STEP_MARKER = "Current step: "
PREVIEW_LINES = 8
PREVIEW_CHARS = 600
MAX_SUMMARY_FILES = 200
_PATH_RE = re.compile(r"(?<![\w/])(?:\./)?[\w-]+(?:/[\w.-]+)*\.[a-z]{1,5}\b")
_MARKER_RE = re.compile(r"^" + re.escape(STEP_MARKER) + r"([a-z0-9][a-z0-9_-]*)", re.MULTILINE)

SYSTEM_PROMPT = """You are Polaris, generating a project ($title) from a description, one step at a time.
You work only through the file tools. Every path is relative to the project folder (for example
`$example`): never absolute, never with `..`. Write complete, working files: no placeholders,
no TODOs, no "rest of the code here". Do only the current step: other steps, some running at the
same time, write the other files. When the step is done, answer with one short sentence."""


class StepError(Exception):
    """A step ended without doing its job (for example it wrote no file)."""


@dataclass(frozen=True)
class FileInfo:
    """A file a step wrote: path relative to the target folder, size in lines and bytes."""

    path: str
    lines: int
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "lines": self.lines, "bytes": self.bytes}

    @classmethod
    def from_json(cls, data: Any) -> FileInfo | None:
        if not isinstance(data, dict) or not isinstance(data.get("path"), str):
            return None
        return cls(data["path"], int(data.get("lines") or 0), int(data.get("bytes") or 0))


@dataclass
class StepOutcome:
    files: list[FileInfo] = field(default_factory=list)
    duration_ms: float = 0.0
    model_calls: int = 0
    finish_reason: str = ""
    text: str = ""


class PrefixedJournal:
    """An :class:`EditRecorder` that stores target-relative paths under the target folder."""

    def __init__(self, inner: EditRecorder, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix.strip("/")

    async def record(self, run_id: str, rel_path: str, before: bytes | None, after: bytes | None, diff: str) -> None:
        await self.inner.record(run_id, f"{self.prefix}/{rel_path}", before, after, diff)

    async def recent_paths(self, limit: int = 50) -> list[str]:
        head = self.prefix + "/"
        return [p[len(head):] for p in await self.inner.recent_paths(limit) if p.startswith(head)]


def step_id_of_request(body: dict[str, Any] | None) -> str | None:
    """The step a chat-completions request belongs to (for scripted model servers)."""
    for message in (body or {}).get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "user" and isinstance(message.get("content"), str):
            match = _MARKER_RE.search(message["content"])
            if match:
                return match.group(1)
    return None


def normalize_path(path: str) -> str:
    return posixpath.normpath(path.replace("\\", "/").strip()).lstrip("/")


def structure_summary(files: dict[str, FileInfo]) -> str:
    """The files written so far as a short listing (paths and sizes, never contents)."""
    if not files:
        return "Files written so far: none yet."
    lines = [f"Files written so far ({len(files)}):"]
    for info in sorted(files.values(), key=lambda f: f.path)[:MAX_SUMMARY_FILES]:
        lines.append(f"- {info.path} ({info.lines} lines)")
    if len(files) > MAX_SUMMARY_FILES:
        lines.append(f"- … and {len(files) - MAX_SUMMARY_FILES} more")
    return "\n".join(lines)


def build_messages(kind: ProjectKind, step: Step, description: str, target: Target,
                   written: dict[str, FileInfo], notes: str = "") -> list[dict[str, Any]]:
    """The step's system and user message; ``notes`` (a verify step's findings) end the user message."""
    values = {"description": description, "title": kind.title, "folder": ".", "folder_name": target.rel}
    # The example path comes from the step's own prompt: small models copy the example verbatim.
    prompt = step.render_prompt(values)
    example = next((m.group(0).removeprefix("./") for m in _PATH_RE.finditer(prompt)), "README.md")
    system = SYSTEM_PROMPT.replace("$title", kind.title).replace("$example", example)
    position = kind.order.index(step.id) + 1
    user = (
        f"Project description:\n{description}\n\n"
        f"{STEP_MARKER}{step.id} — {step.title} (step {position} of {len(kind.steps)})\n"
        f"{prompt}\n\n"
        f"{structure_summary(written)}"
        + (f"\n\n{notes}" if notes else "")
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


_FILE_TOOLS: ToolRegistry | None = None


async def file_tools() -> ToolRegistry:
    """The file tools (readFile, writeFile, ...). The first call imports every tool module in
    a thread (over a second cold), so the event loop is not blocked by it."""
    global _FILE_TOOLS
    if _FILE_TOOLS is None:
        from polaris_jupyter.tools import FILE_TOOLS, load_all

        registry = await asyncio.to_thread(load_all)
        _FILE_TOOLS = registry.select(names=FILE_TOOLS)
    return _FILE_TOOLS


def pin_write_paths(registry: ToolRegistry, files: tuple[str, ...]) -> ToolRegistry:
    """The registry with a writeFile that may write only ``files``: its schema lists them as an
    enum (a grammar-constrained local model then cannot name another file, which a 135M model
    otherwise does) and a call naming another path is refused with the list, for models that
    do not follow schemas strictly."""
    tool = registry.get("writeFile")
    if tool is None or not files:
        return registry
    parameters = copy.deepcopy(tool.parameters)
    path_schema = parameters.setdefault("properties", {}).setdefault("path", {"type": "string"})
    path_schema.pop("pattern", None)
    path_schema["enum"] = list(files)
    path_schema["description"] = f"The file to write; this step writes {', '.join(files)}."
    allowed = {normalize_path(f) for f in files}
    inner = tool.fn

    async def write_planned_file(args: dict[str, Any], ctx: ToolContext) -> Any:
        path = args.get("path")
        if not isinstance(path, str) or normalize_path(path) not in allowed:
            raise ToolError(f"this step writes {', '.join(files)}; call writeFile with one of those paths, not {path!r}")
        return await inner(args, ctx)

    pinned = registry.select(names=registry.names())  # a copy: the shared registry stays as it is
    pinned.register(dataclasses.replace(tool, parameters=parameters, fn=write_planned_file))
    return pinned


def preview_of(content: str) -> str:
    lines = content.splitlines()[:PREVIEW_LINES]
    text = "\n".join(lines)
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _count_lines(content: str) -> int:
    return content.count("\n") + (0 if content.endswith("\n") or not content else 1)


async def run_model_step(
    *,
    chain: ProviderChain,
    kind: ProjectKind,
    step: Step,
    description: str,
    target: Target,
    written: dict[str, FileInfo],
    run_id: str,
    journal: EditRecorder | None,
    on_file: Callable[[FileInfo, str], None],
    notes: str = "",
) -> StepOutcome:
    """Run the tool loop for ``step``; ``written`` (shared by concurrent steps) is updated live."""
    from polaris_jupyter.agent import ToolCallFinished, ToolCallStarted, run_agent_loop

    registry = pin_write_paths(await file_tools(), step.files)
    ctx = ToolContext(
        root=target.path,
        run_id=run_id,
        edits=PrefixedJournal(journal, target.rel) if journal is not None else None,
    )
    arguments: dict[str, dict[str, Any]] = {}
    mine: dict[str, FileInfo] = {}

    async def on_event(event: LoopEvent) -> None:
        if isinstance(event, ToolCallStarted):
            arguments[event.call_id] = event.arguments
        elif isinstance(event, ToolCallFinished) and event.ok:
            args = arguments.pop(event.call_id, {})
            path = args.get("path")
            if not isinstance(path, str):
                return
            rel = normalize_path(path)
            if event.name == "writeFile":
                raw = args.get("content")
                content = raw if isinstance(raw, str) else ""
                info = FileInfo(rel, _count_lines(content), len(content.encode("utf-8", "replace")))
                written[rel] = mine[rel] = info
                on_file(info, preview_of(content))
            elif event.name == "deleteFile":
                for gone in [p for p in written if p == rel or p.startswith(rel + "/")]:
                    written.pop(gone, None)
                    mine.pop(gone, None)

    started = time.perf_counter()
    result = await run_agent_loop(
        chain=chain,
        messages=build_messages(kind, step, description, target, written, notes),
        registry=registry,
        ctx=ctx,
        max_steps=step.max_model_steps,
        first_tool_choice=step.first_tool,
        on_event=on_event,
    )
    outcome = StepOutcome(
        files=sorted(mine.values(), key=lambda f: f.path),
        duration_ms=(time.perf_counter() - started) * 1000.0,
        model_calls=result.steps,
        finish_reason=str(result.finish_reason),
        text=result.text,
    )
    if len(outcome.files) < step.required_files:
        failed = [r for r in result.tool_calls if r.name == "writeFile" and not r.ok]
        why = f" (last writeFile error: {failed[-1].error})" if failed else ""
        raise StepError(f"the model wrote {len(outcome.files)} file(s); this step must write at least "
                        f"{step.required_files}{why}")
    return outcome
