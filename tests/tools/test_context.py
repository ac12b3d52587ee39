"""getRelevantFiles: each ranking signal, reasons, the cached index and its mtime invalidation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from polaris_jupyter.tools import context, context_index
from polaris_jupyter.tools.base import ToolContext, ToolError, ToolResult
from polaris_jupyter.tools.context_index import WorkspaceIndex
from polaris_jupyter.tools.context_terms import module_keys, terms_of
from polaris_jupyter.tools.edits import MemoryEditJournal

TOOL = context.TOOLS[0]


async def relevant(root: Path, edits: MemoryEditJournal | None = None, **args: Any) -> list[dict[str, Any]]:
    out = await TOOL.fn(args, ToolContext(root=root, run_id="r1", edits=edits))
    assert isinstance(out, ToolResult) and out.data is not None
    return list(out.data["files"])


def write(root: Path, rel: str, content: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    return path


def bump_mtime(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write(root, "app/__init__.py", "")
    write(root, "app/auth.py", (
        "from app.models import Account\nfrom .tokens import sign_token\n\n"
        "def login(account: Account, password: str) -> str:\n    return sign_token(account.id)\n"
    ))
    write(root, "app/models.py", "class Account:\n    id: int = 0\n\nclass Invoice:\n    total: float = 0\n")
    write(root, "app/tokens.py", "import hmac\n\ndef sign_token(value: int) -> str:\n    return hmac.new(b'k').hexdigest()\n")
    write(root, "app/views.py", "from app.auth import login\n\ndef login_view(request):\n    return login(request.account, '')\n")
    write(root, "billing/invoices.py", "def invoice_total(items):\n    return sum(items)  # billing invoice totals\n")
    write(root, "tests/test_auth.py", "from app.auth import login\n\ndef test_login():\n    assert login\n")
    write(root, "docs/password-policy.md", "# Password policy\nPasswords rotate; password reset flow.\n")
    write(root, "web/api.ts", "import { fmt } from './format';\nexport function callApi() { return fmt(1) }\n")
    write(root, "web/format.ts", "export function fmt(n: number): string { return String(n) }\n")
    write(root, "web/index.ts", "export * from './api';\n")
    return root


def paths(found: list[dict[str, Any]]) -> list[str]:
    return [f["path"] for f in found]


def reasons(found: list[dict[str, Any]], path: str) -> str:
    return "; ".join(next(f["reasons"] for f in found if f["path"] == path))


@pytest.mark.asyncio
async def test_text_match_ranks_by_bm25(project: Path) -> None:
    found = await relevant(project, query="password reset policy")
    assert found[0]["path"] == "docs/password-policy.md"
    assert "text match" in reasons(found, "docs/password-policy.md")
    assert all(isinstance(f["score"], float) for f in found)
    assert [f["score"] for f in found] == sorted((f["score"] for f in found), reverse=True)
    billing = await relevant(project, query="invoice totals", maxFiles=2)
    assert len(billing) == 2 and billing[0]["path"] == "billing/invoices.py"


@pytest.mark.asyncio
async def test_imports_both_ways_and_shared_symbols(project: Path) -> None:
    found = await relevant(project, query="login", currentFile="app/auth.py", maxFiles=10)
    assert "app/auth.py" not in paths(found)
    assert "imported by currentFile" in reasons(found, "app/models.py")  # absolute import
    assert "imported by currentFile" in reasons(found, "app/tokens.py")  # relative import
    assert "imports currentFile" in reasons(found, "app/views.py")
    assert "defines Account used in currentFile" in reasons(found, "app/models.py")
    assert "uses 1 symbol(s) of currentFile" in reasons(found, "app/views.py")
    assert "test of currentFile" in reasons(found, "tests/test_auth.py")
    assert set(paths(found)[:4]) == {"app/models.py", "app/tokens.py", "app/views.py", "tests/test_auth.py"}
    assert "billing/invoices.py" not in paths(found)


@pytest.mark.asyncio
async def test_typescript_imports_and_index_files(project: Path) -> None:
    found = await relevant(project, query="format number", currentFile="web/api.ts", maxFiles=5)
    assert "imported by currentFile" in reasons(found, "web/format.ts")
    assert "imports currentFile" in reasons(found, "web/index.ts")
    assert paths(found)[0] == "web/format.ts"
    assert module_keys("web/index.ts") == ["web/index", "web"]
    assert module_keys("app/__init__.py") == ["app"]


@pytest.mark.asyncio
async def test_folder_proximity_and_test_pairs(project: Path) -> None:
    found = await relevant(project, query="anything unrelated", currentFile="tests/test_auth.py", maxFiles=10)
    assert "code tested by currentFile" in reasons(found, "app/auth.py")
    assert found[0]["path"] == "app/auth.py"
    near = await relevant(project, query="zzz", currentFile="billing/invoices.py", maxFiles=20)
    assert near == []  # nothing shares the folder, the text, the imports or the symbols
    write(project, "billing/payments.py", "x = 1\n")
    near = await relevant(project, query="zzz", currentFile="billing/invoices.py", maxFiles=20)
    assert paths(near) == ["billing/payments.py"] and "same folder" in reasons(near, "billing/payments.py")


@pytest.mark.asyncio
async def test_recent_edits_from_the_run_history(project: Path) -> None:
    journal = MemoryEditJournal()
    await journal.record("r0", "billing/invoices.py", b"old", b"new", "diff")
    found = await relevant(project, edits=journal, query="login", maxFiles=10)
    assert "recently edited" in reasons(found, "billing/invoices.py")
    without = await relevant(project, query="login", maxFiles=10)
    assert "billing/invoices.py" not in paths(without)


@pytest.mark.asyncio
async def test_index_is_cached_and_invalidated_by_mtime(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    await relevant(project, query="login")
    index = WorkspaceIndex.for_root(project)
    assert index.built and "app/auth.py" in index.docs
    first_ids = {rel: doc.doc_id for rel, doc in index.docs.items()}
    await relevant(project, query="invoice")
    assert {rel: doc.doc_id for rel, doc in index.docs.items()} == first_ids  # nothing re-indexed

    # a new file (folder mtime changes) shows up at once
    write(project, "app/quantum.py", "def quantum_flux():\n    pass\n")
    assert paths(await relevant(project, query="quantum flux"))[0] == "app/quantum.py"
    # an in-place edit shows up at the next file sweep
    monkeypatch.setattr(context_index, "FILE_SWEEP_INTERVAL_S", 0.0)
    target = project / "billing" / "invoices.py"
    target.write_text("def refund_everything():\n    pass\n")
    bump_mtime(target)
    assert paths(await relevant(project, query="refund everything"))[0] == "billing/invoices.py"
    assert "billing/invoices.py" not in paths(await relevant(project, query="invoice totals"))
    # deletion and a new .gitignore drop files from the index
    (project / "app" / "quantum.py").unlink()
    assert "app/quantum.py" not in paths(await relevant(project, query="quantum flux"))
    write(project, ".gitignore", "docs/\n")
    assert "docs/password-policy.md" not in paths(await relevant(project, query="password reset policy"))
    assert "docs/password-policy.md" not in index.docs


@pytest.mark.asyncio
async def test_the_current_file_is_rechecked_between_sweeps(project: Path) -> None:
    await relevant(project, query="x", currentFile="app/views.py")
    views = project / "app" / "views.py"
    views.write_text("from billing.invoices import invoice_total\n")
    bump_mtime(views)
    found = await relevant(project, query="x", currentFile="app/views.py")
    assert "imported by currentFile" in reasons(found, "billing/invoices.py")


@pytest.mark.asyncio
async def test_argument_errors(project: Path) -> None:
    with pytest.raises(ToolError, match="missing required"):
        await TOOL.fn({}, ToolContext(root=project))
    with pytest.raises(ToolError, match="must not be empty"):
        await TOOL.fn({"query": "  "}, ToolContext(root=project))
    with pytest.raises(ToolError, match="at most 20"):
        await TOOL.fn({"query": "x", "maxFiles": 500}, ToolContext(root=project))
    with pytest.raises(ToolError, match="outside"):
        await TOOL.fn({"query": "x", "currentFile": "../secret.py"}, ToolContext(root=project))
    with pytest.raises(ToolError, match="not a file"):
        await TOOL.fn({"query": "x", "currentFile": "app"}, ToolContext(root=project))


def test_terms_split_identifiers() -> None:
    terms = terms_of("class UserAccountService: parse_json_body = HTTPServer")
    for term in ("useraccountservice", "user", "account", "service", "parse_json_body", "parse", "json", "body",
                 "httpserver", "http", "server"):
        assert term in terms, term
    assert "class" not in terms


def test_schema() -> None:
    assert TOOL.name == "getRelevantFiles" and TOOL.group == "context"
    params = TOOL.parameters
    assert set(params["properties"]) == {"query", "currentFile", "maxFiles"}
    assert params["required"] == ["query"] and params["additionalProperties"] is False
    assert params["properties"]["maxFiles"]["default"] == 5


def test_file_sweep_covers_every_file_within_one_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ws"
    for i in range(10):
        write(root, f"f{i}.py", f"value_{i} = {i}\n")
    clock = [1000.0]
    monkeypatch.setattr(context_index.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(context_index, "FILE_SWEEP_INTERVAL_S", 10.0)
    index = WorkspaceIndex(str(root))
    index.refresh()
    for i in range(10):  # an in-place edit of every file: folder mtimes cannot tell
        path = root / f"f{i}.py"
        path.write_text(f"edited_{i} = {i}\n")
        bump_mtime(path)
    os.utime(root, ns=(root.stat().st_atime_ns, index.dirs[""]))  # keep the folder looking unchanged
    checked_per_call = []
    for _ in range(10):
        before = {rel: doc.doc_id for rel, doc in index.docs.items()}
        clock[0] += 1.0  # each call earns a tenth of the interval: one file in ten
        index.refresh()
        checked_per_call.append(sum(index.docs[rel].doc_id != before[rel] for rel in before))
    assert checked_per_call == [1] * 10
    assert all(f"edited_{i}" in index.postings for i in range(10))
    assert not any(f"value_{i}" in index.postings for i in range(10))


@pytest.mark.asyncio
async def test_first_call_on_a_big_tree_answers_within_the_index_budget(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(context, "INDEX_BUDGET_S", 0.0)
    ctx = ToolContext(root=project)
    first = await TOOL.fn({"query": "login", "currentFile": "app/views.py"}, ctx)
    assert isinstance(first, ToolResult) and first.data is not None
    assert first.data["indexComplete"] is False and "still being built" in first.text
    assert list(WorkspaceIndex.for_root(project).docs) == ["app/views.py"]  # the current file goes first
    monkeypatch.setattr(context, "INDEX_BUDGET_S", 60.0)
    later = await TOOL.fn({"query": "login", "currentFile": "app/views.py"}, ctx)
    assert isinstance(later, ToolResult) and later.data is not None
    assert later.data["indexComplete"] is True and later.data["indexedFiles"] == 11
    assert "imported by currentFile" in reasons(later.data["files"], "app/auth.py")
