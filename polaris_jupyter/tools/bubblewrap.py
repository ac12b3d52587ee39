"""Run commands inside bubblewrap: the workspace is the only writable place, no network.

Layout of the sandbox: ``/`` read-only, fresh ``/dev``, ``/proc``, ``/tmp`` and ``/run`` (so
the Unix sockets of docker, dbus or an ssh-agent are out of reach), well-known
credential folders of the home directory and the Jupyter runtime folder (kernel connection
keys) hidden behind empty tmpfs, the workspace bound read-write, its ``.git`` read-only again
(so nothing can plant hooks that would run later outside the sandbox), new network, PID, IPC
and UTS namespaces, all capabilities dropped, killed with its parent, in a new session.

Whether bwrap works is probed once per process by running a trivial command with the same
flags (it can be installed and still fail, e.g. without user namespaces); the answer is cached.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SandboxStatus", "bwrap_prefix", "probe_bwrap", "reset_probe_cache"]

#: Home-relative paths hidden inside the sandbox (folders get an empty tmpfs, files an empty file).
HIDDEN_HOME_PATHS = (
    ".ssh", ".aws", ".azure", ".gnupg", ".kube", ".docker", ".netrc", ".git-credentials", ".pypirc",
    ".npmrc", ".config/gcloud", ".config/gh", ".config/hub", ".password-store", ".local/share/keyrings",
    ".local/share/jupyter/runtime",
)
#: Replaced by empty tmpfs: the Unix sockets of local daemons live there, and a read-only mount
#: does not stop connect() on a socket (the network namespace only covers TCP/IP and abstract sockets).
_RUNTIME_DIRS = ("/run", "/var/run")
_NAMESPACE_FLAGS = ("--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try")
_LIFETIME_FLAGS = ("--die-with-parent", "--new-session", "--cap-drop", "ALL")


@dataclass(frozen=True)
class SandboxStatus:
    """Whether commands run inside bubblewrap, and why not when they don't."""

    available: bool
    reason: str
    bwrap: str | None = None


_cache: dict[str, SandboxStatus] = {}
_cache_paths: dict[str, str] = {}


def reset_probe_cache() -> None:
    """Forget the probe result (tests; after installing bubblewrap)."""
    _cache.clear()


def _hidden_paths(root: Path) -> list[tuple[Path, bool]]:
    """Existing secret paths to mask, as (path, is_dir); never the workspace or its parents."""
    homes = {Path(os.path.expanduser("~")), Path("/root")}
    out: list[tuple[Path, bool]] = []
    for home in homes:
        for rel in HIDDEN_HOME_PATHS:
            path = Path(os.path.realpath(home / rel))
            if not path.exists() or path == root or path in root.parents:
                continue
            out.append((path, path.is_dir()))
    try:
        from jupyter_core.paths import jupyter_runtime_dir

        runtime = Path(os.path.realpath(jupyter_runtime_dir()))
        if runtime.is_dir() and runtime != root and runtime not in root.parents:
            out.append((runtime, True))
    except Exception:  # jupyter_core missing or misconfigured: nothing more to hide
        pass
    return sorted(set(out))


def _empty_file() -> str:
    """An empty read-only file to mount over credential files. /dev/null would do, but bwrap
    mounts it nodev, so reading it fails with EACCES and tools like npm stop at a hidden .npmrc."""
    path = _cache_paths.get("empty")
    if path is None or not os.path.isfile(path) or os.path.getsize(path) != 0:
        fd, path = tempfile.mkstemp(prefix="polaris-empty-")
        os.close(fd)
        os.chmod(path, 0o444)
        _cache_paths["empty"] = path
    return path


def bwrap_prefix(bwrap: str, root: Path, cwd: Path) -> list[str]:
    """The ``bwrap ... --`` argv prefix for running one command with ``cwd`` in workspace ``root``."""
    root = Path(os.path.realpath(root))
    argv = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for runtime in _RUNTIME_DIRS:  # daemon sockets (docker, dbus, ssh-agent) live here
        real = Path(os.path.realpath(runtime))
        if str(real) == runtime and real.is_dir() and real != root and real not in root.parents \
                and root not in real.parents:
            argv += ["--tmpfs", runtime]
    hidden = _hidden_paths(root)
    outside = [(p, d) for p, d in hidden if root not in p.parents]
    inside = [(p, d) for p, d in hidden if root in p.parents]
    for path, is_dir in outside:
        argv += ["--tmpfs", str(path)] if is_dir else ["--ro-bind", _empty_file(), str(path)]
    argv += ["--bind", str(root), str(root)]
    git_dir = Path(os.path.realpath(root / ".git"))  # a folder, or a "gitdir:" file of a worktree
    if root in git_dir.parents and git_dir.exists():
        argv += ["--ro-bind", str(git_dir), str(git_dir)]
    for path, is_dir in inside:
        argv += ["--tmpfs", str(path)] if is_dir else ["--ro-bind", _empty_file(), str(path)]
    argv += [*_NAMESPACE_FLAGS, *_LIFETIME_FLAGS, "--chdir", str(cwd), "--"]
    return argv


def _probe_argv(bwrap: str, root: Path | None) -> list[str]:
    probe_root = Path(os.path.realpath(root or Path.cwd()))
    true_cmd = shutil.which("true") or sys.executable
    return [*bwrap_prefix(bwrap, probe_root, probe_root), true_cmd]


async def probe_bwrap(root: Path | None = None) -> SandboxStatus:
    """Check once (cached) that bwrap exists and can run a command with our flags."""
    cached = _cache.get("status")
    if cached is not None:
        return cached
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        status = SandboxStatus(False, "bubblewrap (bwrap) is not installed")
    else:
        argv = await asyncio.to_thread(_probe_argv, bwrap, root)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE, start_new_session=True,
            )
            try:
                _, err = await asyncio.wait_for(proc.communicate(), timeout=15)
            except BaseException:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                raise
            if proc.returncode == 0:
                status = SandboxStatus(True, "bubblewrap works", bwrap)
            else:
                detail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
                status = SandboxStatus(False, f"bubblewrap is installed but cannot run here ({detail[0]})")
        except (OSError, asyncio.TimeoutError) as exc:
            status = SandboxStatus(False, f"bubblewrap could not be started ({exc})")
    _cache["status"] = status
    return status
