"""The ``run-notebook`` payload: every mistake gets a clear message (no kernel is started)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from polaris_jupyter.jobs import InvalidInput
from polaris_jupyter.tasks.notebook_request import inspect_parameters, parse_request
from tests.tasks.conftest import write_notebook


@pytest.fixture
def root(workspace: Path) -> Path:
    write_notebook(workspace, "nb/a.ipynb", "print(n)", parameters="n = 1  # how many\nlabel: str = 'x'")
    write_notebook(workspace, "plain.ipynb", "1")
    (workspace / "data").mkdir()
    (workspace / "notes.txt").write_text("hi")
    (workspace / "folder.ipynb").mkdir()
    (workspace / "broken.ipynb").write_text("{not json")
    (workspace.parent / "outside.ipynb").write_text("{}")
    os.symlink(workspace.parent / "outside.ipynb", workspace / "link.ipynb")
    return workspace


def test_a_good_payload_is_resolved(root: Path) -> None:
    request = parse_request(root, {"path": "nb/a.ipynb", "parameters": {"n": 3}, "outputs": ["html"], "timeoutS": 5})
    assert request.path == "nb/a.ipynb" and request.source == (root / "nb/a.ipynb").resolve()
    assert request.cwd == request.source.parent and request.kernel == "python3"
    assert request.outputs == ("ipynb", "html") and request.cell_timeout_s == 5.0
    assert request.parameters == {"n": 3} and request.has_parameters_cell
    plain = parse_request(root, {"path": "plain.ipynb", "cwd": "data"})
    assert plain.cwd == (root / "data").resolve() and plain.outputs == ("ipynb",) and not plain.has_parameters_cell


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("a.ipynb", "the payload must be an object"),
        ({}, "path is required"),
        ({"path": "plain.ipynb", "timeout": 3}, "unknown payload field 'timeout'; allowed: path, parameters"),
        ({"path": ""}, "path must be a non-empty workspace-relative path"),
        ({"path": "../outside.ipynb"}, "outside the workspace"),
        ({"path": "/etc/passwd.ipynb"}, "is absolute"),
        ({"path": "link.ipynb"}, "resolves outside the workspace"),
        ({"path": "missing.ipynb"}, "'missing.ipynb' does not exist"),
        ({"path": "notes.txt"}, "'notes.txt' is not a notebook: the path must end in .ipynb"),
        ({"path": "folder.ipynb"}, "'folder.ipynb' is not a file"),
        ({"path": "broken.ipynb"}, "'broken.ipynb' is not a readable notebook"),
        ({"path": "plain.ipynb", "parameters": [1]}, "parameters must be a JSON object"),
        ({"path": "plain.ipynb", "parameters": {"not valid": 1}}, "parameter name 'not valid' is not a valid identifier"),
        ({"path": "plain.ipynb", "parameters": {"class": 1}}, "parameter name 'class' is not a valid identifier"),
        ({"path": "plain.ipynb", "outputs": ["pdf"]}, "outputs: unknown format 'pdf'; supported: ipynb, html"),
        ({"path": "plain.ipynb", "outputs": []}, "outputs must be a non-empty list"),
        ({"path": "plain.ipynb", "timeoutS": 0}, "timeoutS must be a positive number of seconds"),
        ({"path": "plain.ipynb", "timeoutS": True}, "timeoutS must be a positive number"),
        ({"path": "plain.ipynb", "kernel": "cobol"}, "kernel 'cobol' is not installed; installed kernels: "),
        ({"path": "plain.ipynb", "cwd": "notes.txt"}, "cwd 'notes.txt' is not a folder"),
        ({"path": "plain.ipynb", "cwd": "../"}, "cwd: path '../' resolves outside the workspace"),
    ],
)
def test_bad_payloads_are_refused_with_the_reason(root: Path, payload: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=None) as caught:
        parse_request(root, payload)
    assert message in str(caught.value)


def test_inspect_parameters_reads_the_parameters_cell(root: Path) -> None:
    found = inspect_parameters(root, "nb/a.ipynb")
    assert [(p["name"], p["inferredType"], p["default"], p["help"]) for p in found] == [
        ("n", "None", "1", "how many"),
        ("label", "str", "'x'", ""),
    ]
    assert inspect_parameters(root, "plain.ipynb") == []
    with pytest.raises(InvalidInput, match="outside the workspace"):
        inspect_parameters(root, "../outside.ipynb")
