"""Small blocking file helpers shared by the file, notebook and journal code."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from polaris_jupyter.tools.base import ToolError

__all__ = ["describe_binary", "read_existing", "sniff_binary", "stat_regular"]

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"), (b"\xff\xd8\xff", "JPEG image"), (b"GIF8", "GIF image"),
    (b"%PDF", "PDF document"), (b"PK\x03\x04", "ZIP archive (or .docx/.xlsx/.whl/.jar)"),
    (b"\x1f\x8b", "gzip archive"), (b"\x7fELF", "ELF executable"), (b"SQLite format 3\x00", "SQLite database"),
    (b"\x00asm", "WebAssembly module"), (b"BZh", "bzip2 archive"), (b"\xfd7zXZ\x00", "xz archive"),
    (b"RIFF", "RIFF media (WAV/AVI/WebP)"), (b"\x93NUMPY", "NumPy array"), (b"PAR1", "Parquet file"),
)


def sniff_binary(head: bytes) -> bool:
    """True when the first bytes of a file look binary (NUL byte or not UTF-8)."""
    if b"\x00" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(head) - 4
    return False


def describe_binary(rel: str, head: bytes, size_bytes: int) -> str:
    kind = next((label for magic, label in _MAGIC if head.startswith(magic)), "binary data")
    return f"{rel} is a binary file ({kind}, {size_bytes:,} bytes); its content is not shown."


def stat_regular(target: Path, rel: str) -> os.stat_result:
    try:
        info = os.stat(target)
    except FileNotFoundError:
        raise ToolError(f"{rel!r} does not exist in the workspace") from None
    if stat.S_ISDIR(info.st_mode):
        raise ToolError(f"{rel!r} is a folder; use listFiles to see what it holds")
    if not stat.S_ISREG(info.st_mode):
        raise ToolError(f"{rel!r} is not a regular file (device, socket or pipe) and cannot be read")
    return info


def read_existing(target: Path) -> bytes | None:
    """The current bytes of a regular file, or None when nothing is there (for pre-images)."""
    try:
        info = os.stat(target)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISREG(info.st_mode):
        raise ToolError(f"{target.name!r} exists and is not a regular file")
    fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()
