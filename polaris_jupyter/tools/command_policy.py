"""Which commands executeCommand may run, and with which arguments.

The command string is split with :mod:`shlex` and run WITHOUT a shell, so pipes, redirections,
``&&`` and ``$(...)`` have no effect; we refuse the obvious shell tokens with a clear message
instead of passing them on as odd arguments. The program must be a bare name on the allowlist
(``ctx.settings["allowed_commands"]``: a list of names, or a dict ``name -> [subcommands]``).

Programs with known escape hatches get argument checks of their own:

* git: read-only subcommands only (status, diff, log, show, branch listing); global options
  limited to ``--no-pager``/``-P``/``--no-optional-locks`` and ``-C`` inside the workspace;
  ``-c``, ``--exec-path``, ``--git-dir``, ``--output``, ``--ext-diff``, ``--no-index`` ... refused;
  hooks, fsmonitor and pagers are switched off by injected ``-c`` settings.
* pip (also ``python -m pip``): list/show/check with a small set of options.
* npm: script/query subcommands; ``npm exec``/``npx`` only for allowlisted binaries (default
  tsc, eslint, prettier), with ``--no`` injected so nothing is downloaded.
* ls/cat/head/tail/wc: every path argument must resolve inside the workspace.

Interpreters (python, node) can still run arbitrary code: that is what bubblewrap is for.
"""

from __future__ import annotations

import posixpath
import re
import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path

from polaris_jupyter.tools.base import ToolError
from polaris_jupyter.tools.sandbox import relative_to_root, resolve_path

__all__ = [
    "DEFAULT_ALLOWED_COMMANDS",
    "DEFAULT_NPX_BINS",
    "Allowlist",
    "check_command",
    "normalize_allowlist",
    "parse_command",
]

DEFAULT_ALLOWED_COMMANDS: tuple[str, ...] = (
    "python", "pytest", "pip", "ruff", "mypy", "git", "node", "npm", "npx", "tsc", "eslint",
    "prettier", "ls", "cat", "head", "tail", "wc",
)
DEFAULT_NPX_BINS: tuple[str, ...] = ("tsc", "eslint", "prettier")
_DEFAULT_SUBCOMMANDS: dict[str, tuple[str, ...]] = {
    "git": ("status", "diff", "log", "show", "branch"),
    "pip": ("list", "show", "check"),
    "npm": ("run", "run-script", "test", "t", "tst", "start", "ls", "list", "ll", "la", "explain",
            "why", "outdated", "view", "info", "show", "help", "exec", "x"),
}
_SHELL_TOKENS = {"|", "||", "&&", "&", ";", ";;", ">", ">>", "<", "<<", "2>", "2>>", "&>", "2>&1", "|&"}
_PATH_READERS = {"ls", "cat", "head", "tail", "wc"}
#: Options of the path readers whose VALUE is not a path (``head -n 5``).
_READER_VALUE_OPTIONS = {"-n", "-c", "--lines", "--bytes", "--max-unchanged-stats", "-s", "--sleep-interval",
                         "--pid", "-w", "--width", "-T", "--tabsize", "-I", "--ignore", "--hide",
                         "--block-size", "--color", "--format", "--time-style", "--sort", "--time",
                         "--indicator-style", "--quoting-style"}

Allowlist = dict[str, "tuple[str, ...] | None"]


def normalize_allowlist(setting: object) -> Allowlist:
    """Turn ``ctx.settings["allowed_commands"]`` (None, list of names, or name -> subcommands)
    into name -> allowed subcommands (None = the program's default policy)."""
    if setting is None:
        return {name: None for name in DEFAULT_ALLOWED_COMMANDS}
    if isinstance(setting, str):
        setting = [part for part in re.split(r"[\s,]+", setting) if part]
    if isinstance(setting, Mapping):
        out: Allowlist = {}
        for name, subs in setting.items():
            out[str(name)] = None if subs is None else tuple(str(s) for s in subs)
        return out
    if isinstance(setting, (list, tuple, set, frozenset)):
        return {str(name): None for name in setting}
    raise ToolError("the allowed_commands setting must be a list of program names")


def parse_command(command: str) -> list[str]:
    """Split a command line like a POSIX shell would, without running one."""
    if "\x00" in command:
        raise ToolError("the command contains a NUL byte")
    try:
        argv = shlex.split(command, comments=False, posix=True)
    except ValueError as exc:
        raise ToolError(f"cannot parse the command ({exc}); check the quotes") from None
    if not argv:
        raise ToolError("the command is empty")
    for token in argv:
        if token in _SHELL_TOKENS or (re.fullmatch(r"\d?>>?.*|<.*", token) and not token.startswith("<<<")):
            raise ToolError(
                f"{token!r} looks like shell syntax: commands run without a shell, so pipes, redirections, "
                "'&&' and ';' are not available. Run one program per call."
            )
    return argv


def _canonical(program: str) -> str:
    if re.fullmatch(r"python(\d+(\.\d+)?)?", program):
        return "python"
    if re.fullmatch(r"pip(\d+(\.\d+)?)?", program):
        return "pip"
    return program


def _refuse(message: str) -> ToolError:
    return ToolError(message)


def _option_name(arg: str) -> str:
    return arg.split("=", 1)[0]


def _inside(root: Path, cwd: Path, arg: str, what: str) -> str:
    if arg.startswith("/") or arg.startswith("~"):
        raise _refuse(f"{what} {arg!r} is outside the workspace; use a path relative to the workspace")
    rel_cwd = relative_to_root(root, cwd)
    joined = posixpath.normpath(posixpath.join(rel_cwd, arg)) if rel_cwd != "." else arg
    try:
        resolve_path(root, joined)
    except ToolError as exc:
        raise _refuse(f"{what} {arg!r} refused: {exc}") from None
    return arg


def _check_readers(program: str, args: list[str], root: Path, cwd: Path) -> None:
    expect_value = False
    for arg in args:
        if expect_value:
            expect_value = False
            continue
        if arg == "--":
            continue
        if arg.startswith("-") and arg != "-":
            name = _option_name(arg)
            if name in ("--files0-from",):
                raise _refuse(f"{program} option {name} is not allowed")
            if name in _READER_VALUE_OPTIONS and "=" not in arg and len(arg) == len(name):
                expect_value = name not in ("--color",)
            continue
        if arg == "-":
            raise _refuse(f"{program}: reading standard input is not available (there is none)")
        _inside(root, cwd, arg, f"{program} path")


_GIT_GLOBAL_FLAGS = {"--no-pager", "-P", "--no-optional-locks", "--version", "--help", "--no-replace-objects"}
_GIT_DENIED = {"--output", "--ext-diff", "--textconv", "-O", "--no-index", "--exec", "--upload-pack",
               "--receive-pack", "--open-files-in-pager", "-x", "--exec-path", "--git-dir", "--work-tree"}
_GIT_BRANCH_OK = {"-a", "--all", "-r", "--remotes", "-l", "--list", "-v", "-vv", "--verbose", "--show-current",
                  "--no-color", "--color", "--contains", "--no-contains", "--merged", "--no-merged", "--points-at",
                  "--sort", "--format", "--column", "--no-column", "-i", "--ignore-case", "--abbrev", "--no-abbrev",
                  "-q", "--quiet"}
_GIT_BRANCH_VALUE = {"--contains", "--no-contains", "--merged", "--no-merged", "--points-at", "--sort", "--format"}
#: Injected in front of every git command: no hooks, no fsmonitor program, no pager, no external diff.
GIT_SAFE_PREFIX = ("-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "-c", "core.pager=cat",
                   "-c", "diff.external=", "-c", "core.sshCommand=false", "--no-pager")


def _check_git(args: list[str], subs: tuple[str, ...], root: Path, cwd: Path) -> list[str]:
    prefix: list[str] = []
    i = 0
    while i < len(args) and args[i].startswith("-"):
        arg = args[i]
        if arg == "-C":
            if i + 1 >= len(args):
                raise _refuse("git -C needs a folder")
            _inside(root, cwd, args[i + 1], "git -C folder")
            prefix += [arg, args[i + 1]]
            i += 2
            continue
        if arg in _GIT_GLOBAL_FLAGS:
            prefix.append(arg)
            i += 1
            continue
        raise _refuse(f"git option {_option_name(arg)!r} is not allowed here (allowed before the subcommand: "
                      "--no-pager, -P, --no-optional-locks and -C <folder inside the workspace>)")
    rest = args[i:]
    if not rest:
        if any(a in ("--version", "--help") for a in prefix):
            return [*prefix]
        raise _refuse(f"git needs a subcommand; allowed: {', '.join(subs)}")
    sub, sub_args = rest[0], rest[1:]
    if sub not in subs:
        raise _refuse(f"git {sub} is not allowed; allowed read-only subcommands: {', '.join(subs)}")
    for arg in sub_args:
        if arg == "--":
            break
        name = _option_name(arg)
        if name in _GIT_DENIED or (name.startswith("-O") and not name.startswith("--")):
            raise _refuse(f"git {sub} option {name!r} is not allowed (it can write files or run programs)")
    if sub == "branch":
        expect_value = False
        listing = any(a in ("-l", "--list") for a in sub_args)
        for arg in sub_args:
            if expect_value:
                expect_value = False
                continue
            name = _option_name(arg)
            if arg.startswith("-"):
                if name not in _GIT_BRANCH_OK:
                    raise _refuse(f"git branch option {name!r} is not allowed: only listing branches is (e.g. -a, -v, --list)")
                expect_value = name in _GIT_BRANCH_VALUE and "=" not in arg
            elif not listing:
                raise _refuse("git branch may only list branches; creating, renaming or deleting them is not allowed")
    extra = ["--no-ext-diff", "--no-textconv"] if sub in ("diff", "log", "show") else []
    return [*GIT_SAFE_PREFIX, *prefix, sub, *extra, *sub_args]


_PIP_FLAGS = {"-v", "-vv", "-vvv", "--verbose", "-q", "--quiet", "--no-color", "--disable-pip-version-check",
              "--no-input", "--isolated", "-V", "--version", "-h", "--help", "-o", "--outdated", "-u", "--uptodate",
              "-e", "--editable", "-l", "--local", "--user", "--not-required", "--exclude-editable",
              "--include-editable", "--pre", "-f", "--files", "--format", "--exclude", "--path"}
_PIP_VALUE = {"--format", "--exclude", "--path"}


def _check_pip(args: list[str], subs: tuple[str, ...]) -> None:
    positional: list[str] = []
    expect_value = False
    for arg in args:
        if expect_value:
            expect_value = False
            continue
        if arg.startswith("-"):
            name = _option_name(arg)
            if name not in _PIP_FLAGS:
                raise _refuse(f"pip option {name!r} is not allowed here")
            expect_value = name in _PIP_VALUE and "=" not in arg
            continue
        positional.append(arg)
    if not positional:
        if any(a in ("-V", "--version", "-h", "--help") for a in args):
            return
        raise _refuse(f"pip needs a subcommand; allowed: {', '.join(subs)}")
    if positional[0] not in subs:
        raise _refuse(f"pip {positional[0]} is not allowed; allowed: {', '.join(subs)} (installing is not)")


_NPM_DENIED = {"-g", "--global", "--location", "--prefix", "--userconfig", "--globalconfig", "--script-shell",
               "--node-options", "--cache", "-c", "--call", "-p", "--package", "--yes", "-y", "--registry"}


def _check_npx_bin(args: list[str], npx_bins: tuple[str, ...], who: str) -> list[str]:
    """``args`` = what follows ``npx`` / ``npm exec``; returns them with ``--no --`` in front
    (``--no``: never download a package)."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        arg = args[i]
        name = _option_name(arg)
        if arg == "--":
            i += 1
            break
        if name in ("--no", "--no-install", "--offline", "-q", "--quiet"):
            i += 1
            continue
        raise _refuse(f"{who} option {name!r} is not allowed; run an installed tool, e.g. '{who} tsc --noEmit'")
    if i >= len(args):
        raise _refuse(f"{who} needs a program; allowed: {', '.join(npx_bins)}")
    program = args[i]
    if program not in npx_bins:
        raise _refuse(f"{who} {program} is not allowed; {who} may only run {', '.join(npx_bins)} (already installed)")
    return ["--no", "--", *args[i:]]  # "--": options after the program are the program's


def _check_npm(args: list[str], subs: tuple[str, ...], npx_bins: tuple[str, ...]) -> list[str]:
    for arg in args:
        if arg == "--":
            break
        if _option_name(arg) in _NPM_DENIED:
            raise _refuse(f"npm option {_option_name(arg)!r} is not allowed")
    positional = [a for a in args if not a.startswith("-")]
    if not positional:
        if any(a in ("-v", "--version", "-h", "--help") for a in args):
            return args
        raise _refuse(f"npm needs a subcommand; allowed: {', '.join(subs)}")
    sub = positional[0]
    if sub not in subs:
        raise _refuse(f"npm {sub} is not allowed; allowed: {', '.join(subs)}")
    if sub in ("exec", "x"):
        index = args.index(sub)
        return [*args[: index + 1], *_check_npx_bin(args[index + 1 :], npx_bins, "npm exec")]
    return args


def check_command(
    argv: list[str],
    *,
    root: Path,
    cwd: Path,
    allowed: Allowlist,
    search_path: str | None,
    npx_bins: tuple[str, ...] = DEFAULT_NPX_BINS,
) -> list[str]:
    """Validate ``argv`` and return the argv to run (program resolved to an absolute path,
    safety options injected). Raises :class:`ToolError` naming what is not allowed."""
    program, args = argv[0], argv[1:]
    if "/" in program or "\\" in program:
        raise _refuse(f"give the program by name (e.g. 'python'), not by path: {program!r}")
    canonical = _canonical(program)
    if program not in allowed and canonical not in allowed:
        raise _refuse(f"{program!r} is not an allowed command; allowed: {', '.join(sorted(allowed))}")
    configured = allowed.get(program, allowed.get(canonical))
    subs = configured if configured is not None else _DEFAULT_SUBCOMMANDS.get(canonical, ())
    executable = shutil.which(program, path=search_path)
    if executable is None:
        raise _refuse(f"{program!r} is allowed but not installed (not found on PATH)")
    if canonical == "git":
        args = _check_git(args, subs, root, cwd)
    elif canonical == "pip":
        _check_pip(args, subs)
    elif canonical == "npm":
        args = _check_npm(args, subs, npx_bins)
    elif canonical == "npx":
        args = _check_npx_bin(args, npx_bins, "npx")
    elif canonical in _PATH_READERS:
        _check_readers(program, args, root, cwd)
    elif canonical == "python":
        module = _python_module(args)
        if module == "pip":
            pip_args = args[args.index("-m") + 2 :] if "-m" in args else []
            _check_pip(pip_args, _DEFAULT_SUBCOMMANDS["pip"] if "pip" not in allowed or allowed["pip"] is None
                       else allowed["pip"] or ())
    elif configured is not None and args and not args[0].startswith("-") and args[0] not in configured:
        raise _refuse(f"{program} {args[0]} is not allowed; allowed: {', '.join(configured)}")
    return [executable, *args]


def _python_module(args: list[str]) -> str | None:
    """The module of ``python [-flags] -m module``, if that is what the command runs."""
    for index, arg in enumerate(args):
        if arg == "-m":
            return args[index + 1] if index + 1 < len(args) else None
        if arg.startswith("-m") and len(arg) > 2:
            return arg[2:]
        if not arg.startswith("-") or arg in ("-c",):
            return None
    return None


def describe(argv: list[str]) -> str:
    """A shell-quoted rendering of an argv for messages and the UI card."""
    return shlex.join(argv)
