"""No tool reads Polaris's own database or the stored API keys, even inside the workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from polaris_jupyter.config import PolarisConfig
from polaris_jupyter.jobs import TaskRegistry
from polaris_jupyter.runtime import PolarisRuntime
from polaris_jupyter.tools.base import ToolError
from polaris_jupyter.tools.sandbox import resolve_path


def test_the_database_and_keys_in_a_home_workspace_are_refused(tmp_path: Path) -> None:
    data = tmp_path / ".local" / "share" / "jupyter" / "polaris"
    data.mkdir(parents=True)
    config = PolarisConfig(db_path=str(data / "polaris.db"), keys_path=str(data / "keys.json"))
    (data / "keys.json").write_text('{"openai": {"apiKey": "sk-secret"}}')
    (tmp_path / "notes.txt").write_text("mine")
    PolarisRuntime(config, root_dir=tmp_path, registry=TaskRegistry())
    for rel in (".local/share/jupyter/polaris/keys.json", ".local/share/jupyter/polaris/polaris.db",
                ".local/share/jupyter/polaris/polaris.db-wal"):
        with pytest.raises(ToolError, match="Polaris's own data"):
            resolve_path(tmp_path, rel)
    assert resolve_path(tmp_path, "notes.txt") == (tmp_path / "notes.txt").resolve()
