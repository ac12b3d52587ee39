"""Where a workspace keeps its own Python packages, so jedi resolves imports to them first.

jedi puts the interpreter's sys.path (site-packages included) before the folders it finds by
walking up from a file, so in a ``src/`` layout whose package is also installed (psf/requests
with ``requests`` in the venv) every ``import requests`` resolved to the installed copy:
goToDefinition left the workspace and getReferences missed most uses (29% recall next to a
plain word search). The roots found here go *first* on jedi's path.

Roots come from the projects the file belongs to, nearest first: each folder between the
file and the workspace root that holds a ``pyproject.toml`` (its ``[tool.setuptools]
package-dir``, ``[tool.setuptools.packages.find] where``, hatch ``packages``, poetry
``packages`` ``from``, pdm ``package-dir``), a conventional ``src/`` folder, and the project
folder itself when it is not the workspace root (jedi adds that one first anyway). Blocking
(reads small files); call it from the thread that runs jedi.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from polaris_jupyter.tools.tomlread import TOMLDecodeError, loads

__all__ = ["MAX_SOURCE_ROOTS", "python_source_roots"]

MAX_SOURCE_ROOTS = 20
MAX_PYPROJECT_BYTES = 1_000_000


def python_source_roots(root: Path, file_path: Path) -> list[Path]:
    """Folders holding the workspace's top-level packages for ``file_path``, nearest project first.

    Every folder returned exists and lies inside ``root`` (symlinks resolved); a broken or
    missing ``pyproject.toml`` only means fewer roots, never an error.
    """
    root_real = Path(os.path.realpath(root))
    found: list[Path] = []
    for project in _project_dirs(root_real, Path(os.path.realpath(file_path)).parent):
        candidates = [*_configured_roots(project), project / "src"]
        if project != root_real:
            candidates.append(project)
        for candidate in candidates:
            real = Path(os.path.realpath(candidate))
            inside = real == root_real or root_real in real.parents
            if inside and real not in found and real.is_dir():
                found.append(real)
    return found[:MAX_SOURCE_ROOTS]


def _project_dirs(root: Path, start: Path) -> Iterator[Path]:
    """``start`` and its parents up to ``root`` that look like a Python project, nearest first;
    the workspace root always counts (its ``src/`` is the common case)."""
    if start != root and root not in start.parents:
        yield root
        return
    folder = start
    while True:
        if folder == root or (folder / "pyproject.toml").is_file() or (folder / "setup.py").is_file():
            yield folder
        if folder == root:
            return
        folder = folder.parent


def _read_pyproject(project: Path) -> dict[str, Any]:
    path = project / "pyproject.toml"
    try:
        if not path.is_file() or path.stat().st_size > MAX_PYPROJECT_BYTES:
            return {}
        return loads(path.read_text(encoding="utf-8"))
    except (OSError, TOMLDecodeError, UnicodeDecodeError):
        return {}


def _table(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _configured_roots(project: Path) -> list[Path]:
    """The source folders a project's ``pyproject.toml`` names (build-backend settings)."""
    config = _read_pyproject(project)
    if not config:
        return []
    out: list[Path] = []
    package_dir = _table(config, "tool", "setuptools", "package-dir")
    if isinstance(package_dir, dict):
        for name, folder in package_dir.items():
            if not isinstance(folder, str):
                continue
            if name == "":
                out.append(project / folder)
            elif "." not in name and Path(folder).name == name:  # {"pkg" = "lib/pkg"}: lib holds pkg
                out.append((project / folder).parent)
    find = _table(config, "tool", "setuptools", "packages", "find")
    out += [project / where for where in _strings(_table(find, "where"))]
    for packages in (_table(config, "tool", "hatch", "build", "targets", "wheel", "packages"),
                     _table(config, "tool", "hatch", "build", "packages")):
        out += [(project / package).parent for package in _strings(packages)]
    for entry in _table(config, "tool", "poetry", "packages") or []:
        if isinstance(entry, dict) and isinstance(entry.get("from"), str):
            out.append(project / entry["from"])
    out += [project / folder for folder in _strings(_table(config, "tool", "pdm", "build", "package-dir"))]
    return out
