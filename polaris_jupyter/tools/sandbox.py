"""Workspace path sandbox: every tool path goes through :func:`resolve_path`.

A path is accepted only when it is relative, free of NUL bytes, control and invisible
characters and a leading ``~``, and its fully resolved form (symlinks followed) stays inside
the workspace root. The final check is done on the resolved path, not on the text, so
``a/../../x`` and symlinks pointing out are caught by the same comparison. Because some layer
between the model and the file system might decode the text again, a path whose
percent-decoded or NFKC-normalised form would be absolute, traverse upwards or hold a NUL byte
is refused too (``%2e%2e/x``, ``．．／x``). Backslashes are read as folder separators, so
``..\\..\\x`` is treated like ``../../x``.

Writes go through :func:`atomic_write_bytes` (temp file + rename inside the target folder,
opened by file descriptor so a symlink swapped in after the check cannot redirect the write).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import unicodedata
from pathlib import Path
from urllib.parse import unquote

from polaris_jupyter.tools.base import ToolError

__all__ = [
    "MAX_PATH_CHARS",
    "PROTECTED_DIRS",
    "atomic_write_bytes",
    "check_path_text",
    "is_protected",
    "protect_private_path",
    "relative_to_root",
    "remove_path",
    "resolve_entry_path",
    "resolve_path",
    "resolve_writable_path",
]

#: Longer paths are refused outright (Linux PATH_MAX).
MAX_PATH_CHARS = 4096
#: Folders whose content tools never write or delete: a model that could edit ``.git/hooks``
#: or ``.git/config`` could make the user's next ``git`` command run its code unsandboxed.
PROTECTED_DIRS = frozenset({".git"})

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
#: POSIX: the fd-relative write path (os.rename replaces atomically there, like os.replace).
_DIR_FD_OK = os.name == "posix" and all(
    fn in os.supports_dir_fd for fn in (os.open, os.rename, os.unlink, os.chmod, os.stat)
)


def _structural_problem(text: str) -> str | None:
    """Why ``text`` is not an acceptable workspace-relative path, or None."""
    if "\x00" in text:
        return "contains a NUL byte"
    for char in text:
        category = unicodedata.category(char)
        if category == "Cc":
            return "contains a control character"
        if category in ("Cf", "Cs", "Co", "Cn"):
            return f"contains an invisible or invalid Unicode character (U+{ord(char):04X})"
    if text.startswith("~"):
        return "refers to a home directory; use a path relative to the workspace root"
    if text.startswith(("/", "\\")):
        return "is absolute; use a path relative to the workspace root"
    if _WINDOWS_DRIVE.match(text):
        return "looks like a Windows drive path; use a path relative to the workspace root"
    return None


def _has_parent_ref(text: str) -> bool:
    return any(part == ".." for part in re.split(r"[/\\]", text))


def check_path_text(rel_path: object) -> str:
    """Validate the text of a path and return it with backslashes turned into ``/``.

    Raises :class:`ToolError` with a message naming the problem. Does not touch the disk.
    """
    if rel_path is None:
        return "."
    if not isinstance(rel_path, str):
        raise ToolError(f"path must be a string, got {type(rel_path).__name__}")
    if rel_path.strip() == "":
        return "."
    if len(rel_path) > MAX_PATH_CHARS:
        raise ToolError(f"path is too long ({len(rel_path)} characters; at most {MAX_PATH_CHARS})")
    shown = rel_path if len(rel_path) <= 200 else rel_path[:200] + "…"
    problem = _structural_problem(rel_path)
    if problem:
        raise ToolError(f"path {shown!r} {problem}")
    # Forms another layer might decode to: refuse when those would be dangerous.
    variants = {unicodedata.normalize("NFKC", rel_path)}
    decoded = rel_path
    for _ in range(3):
        decoded = unquote(decoded, errors="replace")
        variants.add(decoded)
        variants.add(unicodedata.normalize("NFKC", decoded))
    for variant in variants - {rel_path}:
        if _structural_problem(variant) or _has_parent_ref(variant) or "\ufffd" in variant:
            raise ToolError(
                f"path {shown!r} is refused: its percent-decoded or Unicode-normalised form "
                f"{variant[:200]!r} points outside the workspace or holds forbidden characters"
            )
    return rel_path.replace("\\", "/")


def _root_real(root: Path) -> Path:
    root_real = Path(os.path.realpath(root))
    if not root_real.is_dir():
        raise ToolError(f"workspace root {str(root)!r} is not a directory")
    return root_real


def _inside(root_real: Path, candidate: Path) -> bool:
    return candidate == root_real or root_real in candidate.parents


#: Files no tool may read or write even when the workspace contains them: Polaris's database
#: (every conversation) and the API keys entered in the UI. The runtime registers them
#: (``protect_private_path``); a workspace rooted at ``~`` would otherwise hold them.
_PRIVATE_PATHS: set[Path] = set()


def protect_private_path(path: str | Path) -> None:
    """Refuse tool access to ``path`` (a file or folder) from now on, in every workspace."""
    _PRIVATE_PATHS.add(Path(os.path.realpath(path)))


def _private(candidate: Path) -> Path | None:
    return next((p for p in _PRIVATE_PATHS if candidate == p or p in candidate.parents), None)


def resolve_path(root: Path, rel_path: object, *, must_exist: bool = False) -> Path:
    """Return the absolute, symlink-free path for ``rel_path`` inside ``root`` or raise
    :class:`ToolError`. An empty or missing path means the workspace root itself."""
    text = check_path_text(rel_path)
    root_real = _root_real(root)
    candidate = Path(os.path.realpath(root_real / text))
    if not _inside(root_real, candidate):
        raise ToolError(f"path {text!r} resolves outside the workspace and is refused")
    if _private(candidate) is not None:
        raise ToolError(f"path {text!r} is Polaris's own data (its database or the stored API keys) and is refused")
    if must_exist and not os.path.lexists(candidate):
        raise ToolError(f"{text!r} does not exist in the workspace")
    return candidate


def is_protected(rel: str) -> bool:
    """Whether a workspace-relative POSIX path lies in (or is) a protected folder such as ``.git``."""
    return any(part in PROTECTED_DIRS for part in rel.split("/"))


def _refuse_protected(rel: str) -> None:
    """Refuse ``.git`` (at any depth: nested repositories and submodules have hooks too)."""
    protected = next((part for part in rel.split("/") if part in PROTECTED_DIRS), None)
    if protected:
        raise ToolError(f"{rel!r} is inside a {protected}/ folder, which tools may not change")


def resolve_writable_path(root: Path, rel_path: object) -> Path:
    """Like :func:`resolve_path`, but also refuses the workspace root itself and protected
    folders such as ``.git`` (writing there could run code outside the sandbox later)."""
    target = resolve_path(root, rel_path)
    rel = relative_to_root(root, target)
    if rel == ".":
        raise ToolError("the workspace root itself cannot be written or deleted; name a file or folder in it")
    _refuse_protected(rel)
    return target


def resolve_entry_path(root: Path, rel_path: object) -> Path:
    """The path of the directory entry ``rel_path`` names, WITHOUT following a final symlink.

    For deletes: deleting ``link`` must remove the link, not the file it points to. The parent
    folder is resolved (and checked) like :func:`resolve_path`; root and ``.git`` are refused.
    """
    text = check_path_text(rel_path).rstrip("/")
    parent_text, _, name = text.rpartition("/")
    if name in ("", ".", ".."):
        return resolve_writable_path(root, text)
    parent = resolve_path(root, parent_text or ".")
    root_real = _root_real(root)
    parent_rel = relative_to_root(root_real, parent)
    rel = name if parent_rel == "." else f"{parent_rel}/{name}"
    _refuse_protected(rel)
    return parent / name


def relative_to_root(root: Path, path: Path) -> str:
    """The workspace-relative POSIX form of an absolute path inside ``root`` (a final symlink
    is not followed)."""
    root_real = Path(os.path.realpath(root))
    if Path(os.path.realpath(path)) == root_real:
        return "."
    rel = (Path(os.path.realpath(path.parent)) / path.name).relative_to(root_real)
    return rel.as_posix() or "."


def _make_parents(root_real: Path, folder: Path) -> list[Path]:
    """Create the missing folders of ``folder`` one level at a time, outermost first."""
    missing: list[Path] = []
    current = folder
    while not os.path.lexists(current):
        if not _inside(root_real, current) or current == root_real:
            break
        missing.append(current)
        current = current.parent
    if os.path.lexists(current) and not os.path.isdir(current):
        raise ToolError(f"{relative_to_root(root_real, current)!r} is a file, not a folder")
    created: list[Path] = []
    for path in reversed(missing):
        try:
            os.mkdir(path)
        except FileExistsError:
            pass
        else:
            created.append(path)
        real = Path(os.path.realpath(path))
        if not _inside(root_real, real) or not real.is_dir():
            raise ToolError(f"folder {path.name!r} changed while writing; refusing to continue")
    return created


def _fd_real_path(dir_fd: int, fallback: Path) -> Path:
    proc_link = f"/proc/self/fd/{dir_fd}"
    try:
        return Path(os.readlink(proc_link))
    except OSError:
        return Path(os.path.realpath(fallback))


def atomic_write_bytes(root: Path, target: Path, data: bytes) -> list[Path]:
    """Write ``data`` to ``target`` (already resolved inside ``root``) atomically.

    The bytes go to a temp file in the same folder that then replaces the target with one
    ``rename``, so readers see the old or the new content, never a half-written file. Missing
    parent folders are created; they are returned (outermost first) so an edit journal can remove
    them again. Blocking: call through ``asyncio.to_thread``.
    """
    root_real = _root_real(root)
    if not _inside(root_real, target) or target == root_real:
        raise ToolError("refusing to write outside the workspace")
    created = _make_parents(root_real, target.parent)
    name = target.name
    tmp_name = f".{name[:100]}.polaris-{secrets.token_hex(6)}.tmp"
    if not _DIR_FD_OK:  # pragma: no cover - non-Linux fallback
        return _atomic_write_by_path(target, tmp_name, data, created)
    dir_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if not _inside(root_real, _fd_real_path(dir_fd, target.parent)):
            raise ToolError("the target folder resolves outside the workspace; refusing to write")
        mode: int | None = None
        try:
            existing = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            if stat.S_ISDIR(existing.st_mode):
                raise ToolError(f"{relative_to_root(root_real, target)!r} is a folder, not a file")
            if stat.S_ISREG(existing.st_mode):
                mode = stat.S_IMODE(existing.st_mode)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp_name, flags, 0o666, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if mode is not None:
                os.chmod(tmp_name, mode, dir_fd=dir_fd)
            os.rename(tmp_name, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            try:
                os.unlink(tmp_name, dir_fd=dir_fd)
            except OSError:
                pass
            raise
    finally:
        os.close(dir_fd)
    return created


def _atomic_write_by_path(target: Path, tmp_name: str, data: bytes, created: list[Path]) -> list[Path]:
    tmp = target.parent / tmp_name
    try:
        with open(tmp, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if target.exists():
            shutil.copymode(target, tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return created


def remove_path(root: Path, target: Path) -> None:
    """Delete a file, symlink or folder (recursively, never following symlinks). Blocking."""
    root_real = _root_real(root)
    if not _inside(root_real, target) or target == root_real:
        raise ToolError("refusing to delete outside the workspace or the workspace root")
    if os.path.isdir(target) and not os.path.islink(target):
        shutil.rmtree(target)  # fd-based on Linux: symlinks inside are unlinked, not followed
    else:
        os.unlink(target)
