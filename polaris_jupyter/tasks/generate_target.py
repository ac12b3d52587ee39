"""Where a generation writes: a folder inside the workspace, empty unless overwrite is asked.

The folder is resolved through the workspace sandbox (symlinks followed, ``..`` and absolute
paths outside refused, ``.git`` refused), and the generation's tools are then rooted AT that
folder, so the model cannot write anywhere else: its paths are checked against the target
folder by the same sandbox. The checks touch the disk, so callers run them in a thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from polaris_jupyter.jobs import Conflict, InvalidInput
from polaris_jupyter.tools.base import ToolError
from polaris_jupyter.tools.sandbox import check_path_text, relative_to_root, resolve_writable_path

__all__ = ["MAX_LISTED_ENTRIES", "Target", "ensure_target", "resolve_target"]

MAX_LISTED_ENTRIES = 5


@dataclass(frozen=True)
class Target:
    """The generation folder: ``rel`` is workspace-relative POSIX (``"apps/todo"``), ``path`` absolute."""

    rel: str
    path: Path
    root: Path

    def workspace_path(self, inner: str) -> str:
        """A path relative to the target folder, as a workspace-relative path."""
        return f"{self.rel}/{inner}" if inner not in ("", ".") else self.rel


def resolve_target(root: Path, path: object, *, overwrite: bool = False, check_empty: bool = True) -> Target:
    """Resolve ``path`` inside the workspace ``root`` and apply the folder rules (blocking).

    Raises :class:`InvalidInput` (400) for a path outside the workspace, the workspace root
    itself, a protected folder or bad text, and :class:`Conflict` (409) for a file in the way
    or, unless ``overwrite``, a folder that is not empty.
    """
    if not isinstance(path, str) or not path.strip():
        raise InvalidInput("path must be a non-empty folder name inside the workspace, e.g. \"app\"")
    root_real = Path(os.path.realpath(root))
    text = path.strip()
    if os.path.isabs(text):
        absolute = Path(os.path.realpath(text))
        if absolute != root_real and root_real not in absolute.parents:
            raise InvalidInput(f"target folder {path!r} is outside the workspace ({root_real}); use a folder inside it")
        text = absolute.relative_to(root_real).as_posix() or "."
    try:
        check_path_text(text)
        resolved = resolve_writable_path(root_real, text)
    except ToolError as exc:
        message = str(exc)
        if "workspace root itself" in message:
            message = "the target must be a folder inside the workspace, not the workspace root itself"
        raise InvalidInput(f"target folder {path!r}: {message}") from None
    rel = relative_to_root(root_real, resolved)
    target = Target(rel, resolved, root_real)
    if os.path.lexists(resolved) and not os.path.isdir(resolved):
        raise Conflict(f"target {rel!r} is a file, not a folder; choose another path")
    if check_empty and not overwrite and os.path.isdir(resolved):
        entries = _entries(resolved)
        if entries:
            shown = ", ".join(entries[:MAX_LISTED_ENTRIES]) + (", …" if len(entries) > MAX_LISTED_ENTRIES else "")
            raise Conflict(
                f"the folder {rel!r} is not empty ({shown}); choose an empty or new folder, or set overwrite"
            )
    return target


def _entries(folder: Path) -> list[str]:
    with os.scandir(folder) as it:
        names = []
        for entry in it:
            names.append(entry.name)
            if len(names) > MAX_LISTED_ENTRIES:
                break
    return sorted(names)


def ensure_target(target: Target) -> bool:
    """Create the folder (and parents) if missing; True when it was created (blocking).

    The folder is re-resolved afterwards, so a symlink swapped in meanwhile cannot move it out.
    """
    existed = os.path.isdir(target.path)
    if not existed:
        try:
            os.makedirs(target.path, exist_ok=True)
        except FileExistsError:
            raise Conflict(f"cannot create {target.rel!r}: a file is in the way") from None
        except OSError as exc:
            raise InvalidInput(f"cannot create {target.rel!r}: {exc.strerror or exc}") from None
    again = resolve_target(target.root, target.rel, check_empty=False)
    if again.path != target.path:
        raise InvalidInput(f"target folder {target.rel!r} changed while it was being created; refusing")
    return not existed
