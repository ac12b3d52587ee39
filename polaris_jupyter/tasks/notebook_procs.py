"""Process bookkeeping for ``run-notebook``: identify, kill and tie processes to their parent.

A notebook run is two processes: the runner (papermill, in its own session) and the kernel the
runner launches (jupyter_client puts every kernel in a session of its own, so killing the
runner's group does not reach it). A :class:`ProcessRecord` names one of them by pid *and* start
time, so a pid the system has since reused for an unrelated process is never killed.

Three layers make sure no kernel outlives its run:

1. cancel, TIMED_OUT and the end of every attempt kill both process groups (:func:`kill_group`);
2. the runner asks the kernel to die with it and itself to get SIGTERM when its parent (the
   Jupyter server) dies (:func:`die_with_parent`, Linux ``PR_SET_PDEATHSIG``);
3. the records are saved as a checkpoint of the run, so the next attempt after a crash kills
   whatever the crashed attempt left (:func:`kill_group` on the stored records).

Only the standard library is used: the runner imports this module before papermill.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ProcessRecord",
    "die_with_parent",
    "group_members",
    "is_running",
    "kill_group",
    "pdeathsig_preexec",
    "start_ticks",
]

_PROC = "/proc"
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ProcessRecord:
    """A process leading its own group: ``pid`` (= its pgid) and its start time in clock ticks
    since boot (``None`` where ``/proc`` is not available)."""

    pid: int
    start_ticks: int | None

    @classmethod
    def of(cls, pid: int) -> ProcessRecord:
        return cls(pid, start_ticks(pid))

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "startTicks": self.start_ticks}

    @classmethod
    def from_json(cls, data: Any) -> ProcessRecord | None:
        if not isinstance(data, dict) or not isinstance(data.get("pid"), int) or data["pid"] <= 1:
            return None
        ticks = data.get("startTicks")
        return cls(data["pid"], ticks if isinstance(ticks, int) else None)


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (field 3 onwards), or None."""
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as handle:
            raw = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    # The command name sits in parentheses and may itself contain spaces or parentheses.
    return raw[raw.rfind(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), or None if it is gone or unknown."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def is_running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (a zombie runs no code; its parent reaps it)."""
    fields = _stat_fields(pid)
    if fields is not None:
        return fields[0] != "Z"
    if os.path.isdir(_PROC):
        return False
    try:  # pragma: no cover - platforms without /proc
        os.kill(pid, 0)
    except ProcessLookupError:  # pragma: no cover
        return False
    except PermissionError:  # pragma: no cover
        return True
    return True  # pragma: no cover


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid`` (Linux; [] elsewhere)."""
    members: list[int] = []
    try:
        entries = os.listdir(_PROC)
    except OSError:
        return members
    for entry in entries:
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields and len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def kill_group(record: ProcessRecord, sig: int = signal.SIGKILL) -> bool:
    """Send ``sig`` to the process group ``record`` leads, if it is still that group.

    The leader alive with the recorded start time: kill the group. The leader gone but members
    left (children of a crashed kernel): they are orphans of that group — a pid is not reused
    while a group of that id has members — so kill them. A leader with another start time is
    an unrelated process that got the pid: leave it. Returns whether a signal was sent.
    """
    if record.pid <= 1:
        return False
    current = start_ticks(record.pid)
    if current is not None and record.start_ticks is not None and current != record.start_ticks:
        return False
    if current is None and os.path.isdir(_PROC) and not group_members(record.pid):
        return False
    try:
        os.killpg(record.pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def die_with_parent(sig: int = signal.SIGTERM, expected_parent: int | None = None) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux only).

    Returns False where that is not available. If the parent already died before the request
    (``expected_parent`` no longer our parent), the signal is raised at once.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if expected_parent is not None and os.getppid() != expected_parent:
        os.kill(os.getpid(), sig)
    return True


def pdeathsig_preexec(sig: int = signal.SIGKILL) -> Any:
    """A ``preexec_fn`` for ``Popen`` that makes the child die with the process starting it,
    or None where that is not available. The libc function is looked up before the fork."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        with contextlib.suppress(Exception):
            prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)

    return preexec
