"""Small blocking file helpers shared by the file, notebook and journal code."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from polaris_jupyter.tools.base import ToolError

__all__ = ["count_lines", "describe_binary", "line_offset", "read_existing", "sniff_binary", "stat_regular"]

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


_CHUNK_BYTES = 1 << 20
#: Files larger than this get no exact line count in readFile's header ("?" instead).
MAX_COUNTED_BYTES = 256 * 1024 * 1024


def line_offset(handle: BinaryIO, line_no: int) -> int | None:
    """Byte offset where 1-based line ``line_no`` starts, or None when the file is shorter.
    Reads in bounded chunks, so a long file costs time, not memory."""
    if line_no <= 1:
        return 0
    handle.seek(0)
    seen = offset = 0
    while chunk := handle.read(_CHUNK_BYTES):
        count = chunk.count(b"\n")
        if seen + count >= line_no - 1:
            index = -1
            for _ in range(line_no - 1 - seen):
                index = chunk.index(b"\n", index + 1)
            start = offset + index + 1
            return start if start < offset + len(chunk) or handle.read(1) else None
        seen += count
        offset += len(chunk)
    return None


def count_lines(handle: BinaryIO, size_bytes: int) -> int | None:
    """Number of lines of a file (a last line without newline counts), None when too large."""
    if size_bytes > MAX_COUNTED_BYTES:
        return None
    handle.seek(0)
    newlines = 0
    last = b""
    while chunk := handle.read(_CHUNK_BYTES):
        newlines += chunk.count(b"\n")
        last = chunk[-1:]
    return newlines + (1 if last not in (b"", b"\n") else 0)
