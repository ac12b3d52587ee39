"""GET /polaris/api/v1/files: the files an @-mention in the chat input offers (fuzzy, with the
ignore rules of findFilesByPattern), through a real Jupyter server over a temp workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polaris_jupyter.tools.mentions import score_path
from tests.helpers import rest


def make_workspace(root: Path) -> None:
    for rel, text in {
        "src/module.py": "x = 1\n",
        "src/other.py": "y = 2\n",
        "docs/modes.md": "# modes\n",
        "build/module_gen.py": "generated\n",
        "secret_module.py": "ignored\n",
        "notes.txt": "hello\n",
        ".gitignore": "build/\nsecret_*.py\n",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


async def test_a_query_finds_workspace_files_best_first_without_ignored_ones(
    jp_fetch: Any, polaris: Any, jp_root_dir: Path
) -> None:
    make_workspace(jp_root_dir)
    status, body = await rest(jp_fetch, "files", params={"query": "mod"})
    assert status == 200, body
    paths = body["paths"]
    assert set(paths[:2]) == {"src/module.py", "docs/modes.md"}, paths  # the query in the file name wins
    assert not any(p.startswith("build/") or p.startswith("secret_") for p in paths), paths  # .gitignored
    assert "notes.txt" not in paths and "src/other.py" not in paths

    status, body = await rest(jp_fetch, "files", params={"query": "modu"})
    assert status == 200 and body["paths"][0] == "src/module.py", body

    status, body = await rest(jp_fetch, "files", params={"query": "smp"})  # a subsequence: s…m…p
    assert status == 200 and "src/module.py" in body["paths"], body

    status, body = await rest(jp_fetch, "files", params={"query": "", "limit": "2"})
    assert status == 200 and len(body["paths"]) == 2, body


async def test_a_bad_limit_or_query_is_a_400(jp_fetch: Any, polaris: Any, jp_root_dir: Path) -> None:
    make_workspace(jp_root_dir)
    for params in ({"limit": "0"}, {"limit": "201"}, {"limit": "many"}, {"query": "x" * 513}):
        status, body = await rest(jp_fetch, "files", params=params)
        assert status == 400, (params, body)


def test_scores_rank_name_then_path_then_subsequence() -> None:
    name = score_path("src/module.py", "mod")
    in_path = score_path("module/x.py", "mod")
    spread = score_path("my/other/dir.py", "mod")
    assert name is not None and in_path is not None and spread is not None
    assert name > in_path > spread
    assert score_path("src/other.py", "mod") is None
