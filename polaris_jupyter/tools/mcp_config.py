"""Which MCP servers to connect: the ``mcpServers`` files, read and checked.

The shape is the one Claude Desktop, Cursor and most MCP clients use::

    {"mcpServers": {
        "files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "."],
                  "env": {"LOG_LEVEL": "warn"}},
        "search": {"url": "http://127.0.0.1:8931/mcp", "headers": {"Authorization": "Bearer ${SEARCH_TOKEN}"}},
        "old": {"command": "legacy-server", "disabled": true}}}

It is read from ``<jupyter config dir>/polaris/mcp.json`` (the user's servers) and then from the
workspace's ``.polaris/mcp.json``, whose entries replace the user's entries of the same name.
Optional keys: ``type`` (``stdio`` or ``http``; inferred from ``command`` / ``url``), ``cwd``
(relative to the workspace), ``disabled``, ``timeout`` (seconds per tool call). ``${VAR}`` and
``${VAR:-default}`` in a command, argument, URL, env or header value are taken from the server's
environment when connecting, so tokens need not be written into the file. Keys other clients add
(``alwaysAllow``, ``autoApprove``, ...) are ignored.

Nothing here raises: a file that cannot be used is a :class:`ConfigProblem` (its path and why),
an entry that cannot be used is a :class:`McpServerSpec` with ``error`` set, shown as a failed
server under its own name.
"""

from __future__ import annotations

import enum
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "SERVER_NAME_RE",
    "ConfigProblem",
    "McpConfig",
    "McpServerSpec",
    "McpStatus",
    "McpTransport",
    "expand_env",
    "load_mcp_config",
    "mcp_config_paths",
]

#: Server names become the ``server__`` prefix of tool names, which models only accept in this alphabet.
SERVER_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
#: The largest mcp.json read (bigger is surely not a config file).
MAX_CONFIG_BYTES = 1_000_000
_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class McpStatus(str, enum.Enum):
    """Where a configured server is: the one status set of MCP servers (the API's enum comes from it)."""

    CONNECTING = "connecting"
    READY = "ready"
    FAILED = "failed"
    DISABLED = "disabled"


class McpTransport(str, enum.Enum):
    STDIO = "stdio"
    HTTP = "http"


@dataclass(frozen=True)
class McpServerSpec:
    """One entry of ``mcpServers``, as written (``${VAR}`` not yet expanded).

    ``error`` says why the entry cannot be used (the server is then shown as failed, never
    started); ``source`` is the file it came from."""

    name: str
    source: str
    transport: McpTransport = McpTransport.STDIO
    command: str = ""
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    disabled: bool = False
    call_timeout_s: float | None = None
    error: str | None = None

    @property
    def target(self) -> str:
        """What is connected, for people: the command line or the URL (env and headers never shown)."""
        if self.transport is McpTransport.HTTP:
            return self.url
        return " ".join([self.command, *self.args]).strip()


@dataclass(frozen=True)
class ConfigProblem:
    """A config file that could not be used (or one entry of it, when ``server`` is set)."""

    path: str
    error: str
    server: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "error": self.error, "server": self.server}


@dataclass(frozen=True)
class McpConfig:
    """The servers to connect (by name, workspace entries winning) and what was wrong with the files."""

    servers: dict[str, McpServerSpec]
    problems: list[ConfigProblem]
    paths: list[str]


def mcp_config_paths(root: Path, *, include_workspace: bool = True) -> list[Path]:
    """The files read, in order (later entries of the same name win)."""
    from jupyter_core.paths import jupyter_config_dir

    paths = [Path(jupyter_config_dir()) / "polaris" / "mcp.json"]
    if include_workspace:
        paths.append(root / ".polaris" / "mcp.json")
    return paths


def load_mcp_config(paths: Iterable[Path]) -> McpConfig:
    """Read every file that exists (blocking file I/O: call it in a thread)."""
    servers: dict[str, McpServerSpec] = {}
    problems: list[ConfigProblem] = []
    read: list[str] = []
    for path in paths:
        entries = _read_file(path, problems)
        if entries is None:
            continue
        read.append(str(path))
        for name, entry in entries.items():
            spec = parse_server(name, entry, str(path))
            if spec.error is not None:
                problems.append(ConfigProblem(str(path), spec.error, server=name))
            servers[name] = spec
    return McpConfig(servers, problems, read)


def _read_file(path: Path, problems: list[ConfigProblem]) -> dict[str, Any] | None:
    where = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            problems.append(ConfigProblem(where, f"the file is {size:,} bytes; an MCP config is at most {MAX_CONFIG_BYTES:,}"))
            return None
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        problems.append(ConfigProblem(where, f"not UTF-8 text ({exc.reason} at byte {exc.start})"))
        return None
    except OSError as exc:
        problems.append(ConfigProblem(where, f"cannot be read: {exc.strerror or exc}"))
        return None
    if not text.strip():
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append(ConfigProblem(where, f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"))
        return None
    if not isinstance(data, dict) or "mcpServers" not in data:
        found = ", ".join(sorted(map(str, data))) if isinstance(data, dict) else type(data).__name__
        problems.append(ConfigProblem(where, f'expected an object {{"mcpServers": {{"name": {{...}}}}}}; found {found or "{}"}'))
        return None
    entries = data["mcpServers"]
    if not isinstance(entries, dict):
        problems.append(ConfigProblem(where, f'"mcpServers" must be an object of servers by name, not {type(entries).__name__}'))
        return None
    return entries


def parse_server(name: str, entry: Any, source: str) -> McpServerSpec:
    """One entry, checked; a mistake gives a spec with ``error`` naming the key and what is allowed."""
    if not SERVER_NAME_RE.match(name):
        return McpServerSpec(name, source, error=(
            f"server name {name!r} must be 1-32 letters, digits, '_' or '-' (it prefixes the tool names the model sees)"))
    if not isinstance(entry, dict):
        return McpServerSpec(name, source, error=f"the entry must be an object, not {type(entry).__name__}")
    try:
        return _parse_entry(name, entry, source)
    except ValueError as exc:  # shown under its name, with what it would have connected
        command, url = entry.get("command"), entry.get("url")
        transport = McpTransport.HTTP if "url" in entry and "command" not in entry else McpTransport.STDIO
        return McpServerSpec(name, source, transport, command=command if isinstance(command, str) else "",
                             url=url if isinstance(url, str) else "", error=str(exc))


def _parse_entry(name: str, entry: dict[str, Any], source: str) -> McpServerSpec:
    kind = entry.get("type", entry.get("transport"))
    if kind is None:
        kind = "http" if "url" in entry and "command" not in entry else "stdio"
    if not isinstance(kind, str):
        raise ValueError(f'"type" must be "stdio" or "http", not {kind!r}')
    kind = kind.strip().lower()
    if kind == "sse":
        raise ValueError('the SSE transport is not supported; use the server\'s streamable HTTP endpoint ("type": "http")')
    if kind not in ("stdio", "http", "streamable-http", "streamablehttp", "streamable_http"):
        raise ValueError(f'"type" must be "stdio" or "http" (streamable HTTP), not {kind!r}')
    disabled = entry.get("disabled", False)
    if not isinstance(disabled, bool):
        raise ValueError(f'"disabled" must be true or false, not {disabled!r}')
    timeout = entry.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
        raise ValueError(f'"timeout" must be a positive number of seconds, not {timeout!r}')
    common: dict[str, Any] = {
        "disabled": disabled, "call_timeout_s": float(timeout) if timeout is not None else None,
    }
    if kind == "stdio":
        command = entry.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ValueError('a stdio server needs "command" (the program to start), e.g. "npx" or "python"')
        cwd = entry.get("cwd")
        if cwd is not None and not isinstance(cwd, str):
            raise ValueError(f'"cwd" must be a path (text), not {type(cwd).__name__}')
        return McpServerSpec(
            name, source, McpTransport.STDIO, command=command.strip(), args=tuple(_strings(entry, "args")),
            env=_string_map(entry, "env"), cwd=cwd, **common,
        )
    url = entry.get("url")
    if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url.strip()):
        raise ValueError(f'an HTTP server needs "url" starting with http:// or https://, got {url!r}')
    return McpServerSpec(name, source, McpTransport.HTTP, url=url.strip(), headers=_string_map(entry, "headers"), **common)


def _strings(entry: dict[str, Any], key: str) -> list[str]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value):
        raise ValueError(f'"{key}" must be a list of strings, got {value!r}')
    return [str(v) for v in value]


def _string_map(entry: dict[str, Any], key: str) -> dict[str, str]:
    value = entry.get(key, {})
    if not isinstance(value, dict):
        raise ValueError(f'"{key}" must be an object of names to strings, not {type(value).__name__}')
    out: dict[str, str] = {}
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise ValueError(f'"{key}.{k}" must be a string, not {type(v).__name__}')
        out[str(k)] = str(v)
    return out


def expand_env(value: str, where: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace ``${VAR}`` / ``${VAR:-default}``; an unset variable without a default is a ValueError
    naming it and ``where`` it is used (so the server shows as failed with that reason)."""
    env = os.environ if environ is None else environ

    def sub(match: re.Match[str]) -> str:
        var, default = match.group(1), match.group(2)
        if var in env:
            return env[var]
        if default is not None:
            return default
        raise ValueError(f"environment variable {var} is not set (used in {where}); set it or give a default: ${{{var}:-...}}")

    return _VAR_RE.sub(sub, value)
