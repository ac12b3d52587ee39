"""The mcpServers files: merging by name, every mistake reported with its path and reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polaris_jupyter.config import PolarisConfig
from polaris_jupyter.tools.mcp_config import (
    McpTransport,
    expand_env,
    load_mcp_config,
    mcp_config_paths,
)


def write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_workspace_entries_replace_the_users_by_name(tmp_path: Path) -> None:
    user = write(tmp_path / "user.json", {"mcpServers": {
        "files": {"command": "npx", "args": ["-y", "server-files", "."]},
        "search": {"url": "http://127.0.0.1:9/mcp"},
    }})
    workspace = write(tmp_path / "ws.json", {"mcpServers": {"files": {"command": "uvx", "args": ["files-py"]}}})
    config = load_mcp_config([user, workspace, tmp_path / "missing.json"])
    assert config.problems == [] and config.paths == [str(user), str(workspace)]
    files, search = config.servers["files"], config.servers["search"]
    assert (files.command, files.args, files.source) == ("uvx", ("files-py",), str(workspace))
    assert search.transport is McpTransport.HTTP and search.target == "http://127.0.0.1:9/mcp"
    assert files.target == "uvx files-py"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"mcpServers": {"a": {"command": "x"},}}', "not valid JSON: Expecting property name enclosed in double quotes at line 1, column 39"),
        ('["a"]', 'expected an object {"mcpServers": {"name": {...}}}; found list'),
        ('{"servers": {}}', 'expected an object {"mcpServers": {"name": {...}}}; found servers'),
        ('{"mcpServers": []}', '"mcpServers" must be an object of servers by name, not list'),
    ],
)
def test_a_bad_file_is_reported_with_its_path_and_reason(tmp_path: Path, text: str, reason: str) -> None:
    good = write(tmp_path / "good.json", {"mcpServers": {"ok": {"command": "ok-server"}}})
    bad = write(tmp_path / "bad.json", text)
    config = load_mcp_config([good, bad])
    assert [(p.path, p.error, p.server) for p in config.problems] == [(str(bad), reason, None)]
    assert list(config.servers) == ["ok"], "the good file still counts"


def test_a_file_that_is_not_text_or_not_readable_is_reported(tmp_path: Path) -> None:
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00")
    folder = tmp_path / "dir.json"
    folder.mkdir()
    config = load_mcp_config([binary, folder])
    errors = {p.path: p.error for p in config.problems}
    assert errors[str(binary)].startswith("not UTF-8 text")
    assert errors[str(folder)].startswith("cannot be read: Is a directory")


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ({"args": ["x"]}, 'a stdio server needs "command" (the program to start), e.g. "npx" or "python"'),
        ({"url": "ftp://host/x"}, 'an HTTP server needs "url" starting with http:// or https://, got \'ftp://host/x\''),
        ({"type": "sse", "url": "http://h/sse"}, "the SSE transport is not supported; use the server's streamable HTTP endpoint"),
        ({"type": "websocket", "url": "ws://h"}, '"type" must be "stdio" or "http" (streamable HTTP), not \'websocket\''),
        ({"command": "x", "args": "--flag"}, '"args" must be a list of strings, got \'--flag\''),
        ({"command": "x", "env": {"A": None}}, '"env.A" must be a string, not NoneType'),
        ({"url": "http://h/mcp", "headers": ["Authorization"]}, '"headers" must be an object of names to strings, not list'),
        ({"command": "x", "disabled": "yes"}, '"disabled" must be true or false, not \'yes\''),
        ({"command": "x", "timeout": 0}, '"timeout" must be a positive number of seconds, not 0'),
        ("npx server", "the entry must be an object, not str"),
    ],
)
def test_a_bad_entry_is_a_failed_server_with_the_reason(tmp_path: Path, entry: object, reason: str) -> None:
    path = write(tmp_path / "mcp.json", {"mcpServers": {"broken": entry, "fine": {"command": "fine"}}})
    config = load_mcp_config([path])
    assert config.servers["broken"].error is not None and config.servers["broken"].error.startswith(reason)
    assert [(p.path, p.server) for p in config.problems] == [(str(path), "broken")]
    assert config.servers["fine"].error is None


def test_a_bad_entry_still_says_what_it_would_connect(tmp_path: Path) -> None:
    path = write(tmp_path / "mcp.json", {"mcpServers": {"web": {"url": "ftp://host/x"}, "cmd": {"command": "srv", "timeout": -1}}})
    servers = load_mcp_config([path]).servers
    assert (servers["web"].transport, servers["web"].target) == (McpTransport.HTTP, "ftp://host/x")
    assert (servers["cmd"].transport, servers["cmd"].target) == (McpTransport.STDIO, "srv")


def test_server_names_must_make_valid_tool_names(tmp_path: Path) -> None:
    path = write(tmp_path / "mcp.json", {"mcpServers": {"my server": {"command": "x"}, "a" * 33: {"command": "x"}}})
    config = load_mcp_config([path])
    assert all("must be 1-32 letters, digits, '_' or '-'" in (s.error or "") for s in config.servers.values())


def test_type_is_inferred_and_other_clients_keys_are_ignored(tmp_path: Path) -> None:
    path = write(tmp_path / "mcp.json", {"mcpServers": {
        "a": {"command": "x", "alwaysAllow": ["read"], "autoApprove": []},
        "b": {"type": "streamable-http", "url": "https://example.invalid/mcp", "timeout": 5},
        "c": {"command": "y", "disabled": True},
    }})
    servers = load_mcp_config([path]).servers
    assert servers["a"].transport is McpTransport.STDIO and servers["a"].error is None
    assert servers["b"].transport is McpTransport.HTTP and servers["b"].call_timeout_s == 5.0
    assert servers["c"].disabled


def test_expand_env() -> None:
    env = {"TOKEN": "abc"}
    assert expand_env("Bearer ${TOKEN}", "headers.Authorization", env) == "Bearer abc"
    assert expand_env("${MISSING:-fallback}/${TOKEN}", "url", env) == "fallback/abc"
    assert expand_env("no vars $HOME", "args[0]", env) == "no vars $HOME"
    with pytest.raises(ValueError, match=r"environment variable MISSING is not set \(used in env.KEY\)"):
        expand_env("${MISSING}", "env.KEY", env)


def test_config_paths_follow_the_jupyter_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "jcfg"))
    assert mcp_config_paths(tmp_path / "ws") == [tmp_path / "jcfg" / "polaris" / "mcp.json",
                                                 tmp_path / "ws" / ".polaris" / "mcp.json"]
    assert mcp_config_paths(tmp_path / "ws", include_workspace=False) == [tmp_path / "jcfg" / "polaris" / "mcp.json"]
    monkeypatch.setenv("POLARIS_MCP_WORKSPACE_CONFIG", "0")
    assert PolarisConfig().mcp_workspace_config is False
    monkeypatch.setenv("POLARIS_MCP_CALL_TIMEOUT_S", "7.5")
    assert PolarisConfig().mcp_call_timeout_s == 7.5
