"""proposeCellEdit writes nothing and records a diff; applying writes through the journal (so the
proposing run's revert undoes it), refuses a changed cell or a decided proposal with a Conflict
and changes nothing then; proposals survive in the run store's file."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat import v4

from polaris_jupyter.errors import Conflict, NotFound
from polaris_jupyter.jobs import SqliteStore
from polaris_jupyter.tools.base import ToolContext, ToolError
from polaris_jupyter.tools.edits import MemoryEditJournal
from polaris_jupyter.tools.notebook_proposals import (
    MemoryProposals,
    SqliteProposals,
    apply_proposal,
    discard_proposal,
)
from tests.tools.conftest import snapshot
from tests.tools.test_notebook_cells import run_tool


def write_nb(path: Path, *sources: str) -> list[str]:
    nb = v4.new_notebook()
    nb.cells = [v4.new_code_cell(s) for s in sources]
    nb.cells[1].outputs = [v4.new_output("error", ename="NameError", evalue="name 'pd' is not defined", traceback=[])]
    path.write_text(nbformat.writes(nb))
    return [c.id for c in nb.cells]


def sources(path: Path) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells]


@pytest.fixture
def proposals() -> MemoryProposals:
    return MemoryProposals()


@pytest.fixture
def pctx(workspace: Path, journal: MemoryEditJournal, proposals: MemoryProposals) -> ToolContext:
    return ToolContext(root=workspace, run_id="run-1", edits=journal, proposals=proposals, call_id="call_7")


@pytest.mark.asyncio
async def test_propose_writes_nothing_then_apply_writes_revertibly(
    workspace: Path, pctx: ToolContext, journal: MemoryEditJournal, proposals: MemoryProposals
) -> None:
    ids = write_nb(workspace / "nb.ipynb", "x = 1", "df = pd.read_csv('a.csv')")
    original = snapshot(workspace)
    result = await run_tool("proposeCellEdit", {"path": "nb.ipynb", "index": 1, "explanation": "import pandas",
                                                "source": "import pandas as pd\ndf = pd.read_csv('a.csv')"}, pctx)
    assert snapshot(workspace) == original  # nothing written
    assert result.diff and "+import pandas as pd" in result.diff and "a/nb.ipynb (cell 1)" in result.diff
    assert result.data and result.data["status"] == "pending" and result.data["toolCallId"] == "call_7"
    (proposal,) = await proposals.for_run("run-1")
    assert proposal.cell_id == ids[1] and proposal.id in result.text
    applied = await apply_proposal(proposals, proposal.id, root=workspace, journal=journal)
    assert applied.status == "applied" and applied.decided_at
    assert sources(workspace / "nb.ipynb")[1] == "import pandas as pd\ndf = pd.read_csv('a.csv')"
    assert nbformat.read(workspace / "nb.ipynb", as_version=4).cells[1].outputs == []  # stale error cleared
    with pytest.raises(Conflict, match="already applied"):
        await apply_proposal(proposals, proposal.id, root=workspace, journal=journal)
    await journal.revert_run(workspace, "run-1")  # reverting the proposing run undoes the applied fix
    assert snapshot(workspace) == original


@pytest.mark.asyncio
async def test_apply_follows_the_cell_by_id_and_refuses_a_changed_cell(
    workspace: Path, pctx: ToolContext, journal: MemoryEditJournal, proposals: MemoryProposals
) -> None:
    write_nb(workspace / "nb.ipynb", "a", "b = 1/0", "c")
    await run_tool("proposeCellEdit", {"path": "nb.ipynb", "index": 1, "source": "b = 1"}, pctx)
    await run_tool("moveNotebookCell", {"path": "nb.ipynb", "index": 1, "toIndex": 2}, pctx)  # the cell moved
    (proposal,) = await proposals.for_run("run-1")
    applied = await apply_proposal(proposals, proposal.id, root=workspace, journal=journal)
    assert sources(workspace / "nb.ipynb") == ["a", "c", "b = 1"] and applied.cell_index == 2

    await run_tool("proposeCellEdit", {"path": "nb.ipynb", "index": 0, "source": "a = 'fixed'"}, pctx)
    second = (await proposals.for_run("run-1"))[1]
    nb = nbformat.read(workspace / "nb.ipynb", as_version=4)
    nb.cells[0].source = "a = 'the user typed this'"
    (workspace / "nb.ipynb").write_text(nbformat.writes(nb))
    before = snapshot(workspace)
    with pytest.raises(Conflict, match="changed since the proposal"):
        await apply_proposal(proposals, second.id, root=workspace, journal=journal)
    assert snapshot(workspace) == before and (await proposals.get(second.id)).status == "pending"  # type: ignore[union-attr]
    discarded = await discard_proposal(proposals, second.id)
    assert discarded.status == "discarded" and snapshot(workspace) == before
    with pytest.raises(Conflict, match="already discarded"):
        await discard_proposal(proposals, second.id)
    with pytest.raises(NotFound):
        await apply_proposal(proposals, "prop_nope", root=workspace, journal=journal)


@pytest.mark.asyncio
async def test_propose_refusals(workspace: Path, pctx: ToolContext) -> None:
    write_nb(workspace / "nb.ipynb", "a", "b")
    cases = [
        ({"path": "nb.ipynb", "index": 0, "source": "a"}, "same as cell 0"),
        ({"path": "nb.ipynb", "source": "x"}, "name the cell"),
        ({"path": "nb.ipynb", "index": 9, "source": "x"}, "no cell 9"),
        ({"path": "../nb.ipynb", "index": 0, "source": "x"}, "outside"),
    ]
    for args, message in cases:
        with pytest.raises(ToolError, match=message):
            await run_tool("proposeCellEdit", args, pctx)
    pctx.proposals = None
    with pytest.raises(ToolError, match="use editNotebookCell"):
        await run_tool("proposeCellEdit", {"path": "nb.ipynb", "index": 0, "source": "z"}, pctx)


@pytest.mark.asyncio
async def test_proposals_persist_in_the_run_store(tmp_path: Path, workspace: Path, journal: MemoryEditJournal) -> None:
    write_nb(workspace / "nb.ipynb", "a", "b")
    store = SqliteStore(tmp_path / "polaris.db")
    await store.open()
    try:
        ctx = ToolContext(root=workspace, run_id="run-9", edits=journal, proposals=SqliteProposals(store), call_id="c1")
        await run_tool("proposeCellEdit", {"path": "nb.ipynb", "index": 0, "source": "a = 2"}, ctx)
    finally:
        await store.close()
    reopened = SqliteStore(tmp_path / "polaris.db")
    await reopened.open()
    try:
        fresh = SqliteProposals(reopened)
        (proposal,) = await fresh.for_run("run-9")
        assert proposal.call_id == "c1" and proposal.before_source == "a" and proposal.status == "pending"
        await apply_proposal(fresh, proposal.id, root=workspace, journal=journal)
        assert (await fresh.get(proposal.id)).status == "applied"  # type: ignore[union-attr]
        assert sources(workspace / "nb.ipynb") == ["a = 2", "b"]
    finally:
        await reopened.close()
