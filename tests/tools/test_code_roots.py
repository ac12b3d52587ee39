"""Python navigation in a src-layout workspace whose package is ALSO importable from elsewhere.

The same-named copy sits on PYTHONPATH of a fresh interpreter (exactly where an installed copy
in site-packages sits: on the environment's sys.path, which jedi consults before the folders it
finds next to the file). Before the workspace's source roots went first, every absolute import
resolved to that copy: goToDefinition left the workspace and getReferences missed the uses in
tests/ and in the package's own modules.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from polaris_jupyter.tools.code_roots import python_source_roots

PACKAGE = "polaris_layout_fixture"

CORE = """\
class Widget:
    \"\"\"A thing with a size.\"\"\"

    def __init__(self, size: int) -> None:
        self.size = size


def make_widget(size: int = 1) -> Widget:
    return Widget(size)
"""

EXTRA = f"""\
from {PACKAGE}.core import Widget


def double(widget: Widget) -> Widget:
    return Widget(widget.size * 2)


def pair() -> tuple[Widget, Widget]:
    return Widget(1), Widget(2)
"""

TESTS = f"""\
from {PACKAGE} import core
from {PACKAGE}.core import Widget, make_widget
from {PACKAGE}.extra import double


def test_make() -> None:
    assert isinstance(make_widget(), Widget)


def test_double() -> None:
    assert double(Widget(2)).size == 4
    assert core.Widget(3).size == 3
"""

SHADOW_CORE = "# the installed copy\n\n\nclass Widget:\n    pass\n\n\ndef make_widget(size=1):\n    return Widget()\n"

#: (folder holding the package, pyproject.toml text): a plain src/ layout and two configured ones.
LAYOUTS = {
    "src": ("src", '[project]\nname = "polaris-layout-fixture"\nversion = "1"\n'),
    "setuptools-package-dir": ("lib", '[project]\nname = "x"\nversion = "1"\n\n[tool.setuptools]\npackage-dir = {"" = "lib"}\n'),
    "hatch-packages": ("code", f'[tool.hatch.build.targets.wheel]\npackages = ["code/{PACKAGE}"]\n'),
}

PROBE = """\
import asyncio, json, sys
from pathlib import Path
from polaris_jupyter.tools import code
from polaris_jupyter.tools.base import ToolContext

tools = {t.name: t for t in code.TOOLS}
root = Path(sys.argv[1])
out = {}
for key, (name, path, line, column) in json.loads(sys.argv[2]).items():
    result = asyncio.run(tools[name].fn({"path": path, "line": line, "column": column}, ToolContext(root=root)))
    out[key] = result.data["locations"]
print(json.dumps(out))
"""


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _make(tmp_path: Path, layout: str) -> tuple[Path, Path, str]:
    folder, pyproject = LAYOUTS[layout]
    root = tmp_path / "ws"
    base = f"{folder}/{PACKAGE}"
    _write(root, "pyproject.toml", pyproject)
    _write(root, f"{base}/__init__.py", f"from {PACKAGE}.core import Widget, make_widget  # noqa: F401\n")
    _write(root, f"{base}/core.py", CORE)
    _write(root, f"{base}/extra.py", EXTRA)
    _write(root, "tests/test_core.py", TESTS)
    shadow = tmp_path / "installed"
    _write(shadow, f"{PACKAGE}/__init__.py", f"from {PACKAGE}.core import Widget, make_widget\n")
    _write(shadow, f"{PACKAGE}/core.py", SHADOW_CORE)
    _write(shadow, f"{PACKAGE}/extra.py", "def double(w):\n    return w\n")
    return root, shadow, base


def _col(text: str, line: int, word: str) -> int:
    """1-based column of the first ``word`` on ``line`` of ``text``."""
    return text.splitlines()[line - 1].index(word) + 1


def _word_hits(root: Path, word: str) -> set[tuple[str, int]]:
    """What ``rg -w`` finds: every line of a workspace .py file holding the word."""
    pattern = re.compile(rf"\b{re.escape(word)}\b")
    hits = set()
    for path in sorted(root.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if pattern.search(line):
                hits.add((path.relative_to(root).as_posix(), number))
    return hits


def _probe(root: Path, shadow: Path, queries: dict[str, tuple[str, str, int, int]]) -> dict[str, list[dict]]:
    env = {**os.environ, "PYTHONPATH": str(shadow)}
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run([sys.executable, "-c", PROBE, str(root), json.dumps(queries)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_references_and_definitions_stay_in_the_workspace_despite_an_installed_copy(tmp_path: Path, layout: str) -> None:
    root, shadow, base = _make(tmp_path, layout)
    check = subprocess.run([sys.executable, "-c", f"import {PACKAGE}.core as m; print(m.__file__)"],
                           env={**os.environ, "PYTHONPATH": str(shadow)}, capture_output=True, text=True, check=True)
    assert check.stdout.startswith(str(shadow)), "the shadow copy must really be importable (the bug's setting)"
    results = _probe(root, shadow, {
        "refs": ("getReferences", f"{base}/core.py", 1, _col(CORE, 1, "Widget")),  # class Widget
        "refs_from_tests": ("getReferences", "tests/test_core.py", 2, _col(TESTS, 2, "make_widget")),
        "def_from_tests": ("goToDefinition", "tests/test_core.py", 11, _col(TESTS, 11, "Widget")),  # Widget(2)
        "def_via_module": ("goToDefinition", "tests/test_core.py", 12, _col(TESTS, 12, "Widget")),  # core.Widget
    })
    words = _word_hits(root, "Widget")
    found = {(loc["path"], loc["line"]) for loc in results["refs"]}
    recall = len(found & words) / len(words)
    assert recall >= 0.9, f"recall {recall:.0%}: missed {sorted(words - found)}"
    assert all(not loc["path"].startswith("<outside") for loc in results["refs"])
    make_words = _word_hits(root, "make_widget")
    make_found = {(loc["path"], loc["line"]) for loc in results["refs_from_tests"]}
    assert len(make_found & make_words) / len(make_words) >= 0.9, sorted(make_words - make_found)
    for key in ("def_from_tests", "def_via_module"):
        assert [(loc["path"], loc["line"]) for loc in results[key]] == [(f"{base}/core.py", 1)], results[key]


def test_source_roots_from_pyproject_nearest_project_first(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    _write(root, "pyproject.toml", '[tool.setuptools.packages.find]\nwhere = ["libs", "../outside", "missing"]\n')
    _write(root, "libs/a/__init__.py", "")
    _write(root, "src/b/__init__.py", "")
    _write(root, "apps/web/pyproject.toml", '[tool.poetry]\npackages = [{include = "w", from = "source"}]\n')
    _write(root, "apps/web/source/w/__init__.py", "")
    _write(root, "apps/web/source/w/mod.py", "")
    _write(root, "broken/pyproject.toml", "this is [not toml\n")
    _write(root, "broken/src/c/__init__.py", "")
    (tmp_path / "outside").mkdir()
    rel = lambda paths: [p.relative_to(root).as_posix() if p != root else "." for p in paths]  # noqa: E731
    assert rel(python_source_roots(root, root / "apps/web/source/w/mod.py")) == [
        "apps/web/source", "apps/web", "libs", "src"]
    assert rel(python_source_roots(root, root / "broken/src/c/__init__.py")) == ["broken/src", "broken", "libs", "src"]
    assert rel(python_source_roots(root, root / "libs/a/__init__.py")) == ["libs", "src"]
    assert python_source_roots(root, tmp_path / "elsewhere.py") == [root / "libs", root / "src"]
