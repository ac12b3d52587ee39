"""Which workspace files tools skip: built-in noise folders plus ``.gitignore`` rules.

Shared by getProjectStructure and the search tools so both agree on what "the project" is.
Built-in: ``.git``, ``node_modules``, virtualenvs (``.venv``, ``venv`` and any folder holding
``pyvenv.cfg``), Python/tool caches, ``.ipynb_checkpoints`` and build output. ``.gitignore``
files are read lazily per folder (plus ``.git/info/exclude``) with git's rules: ``#`` comments,
``!`` negation, trailing ``/`` for folders only, a ``/`` at the start or in the middle anchors
the pattern to its folder, ``*``/``?``/``[...]`` never cross ``/``, and ``**`` spans folders.
A path inside an ignored folder is ignored (git cannot re-include it either).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BUILTIN_IGNORED_DIRS", "IgnoreRules", "walk_entries", "walk_files"]

BUILTIN_IGNORED_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__", ".mypy_cache",
        ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints", ".tox", ".nox", ".eggs", "dist",
        "build", ".cache", ".parcel-cache", ".next", ".nuxt", ".turbo", ".svelte-kit",
        ".vite", ".pytype", ".hypothesis", "htmlcov", ".coverage_html",
    }
)
_BUILTIN_DIR_SUFFIXES = (".egg-info",)
_BUILTIN_FILE_SUFFIXES = (".pyc", ".pyo")


def _translate(pattern: str) -> str:
    """Regex source for one gitignore glob (already stripped of ``!``, anchors and trailing ``/``)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "*":
            if pattern.startswith("**", i):
                at_start = i == 0 or pattern[i - 1] == "/"
                j = i + 2
                if at_start and j < n and pattern[j] == "/":
                    out.append("(?:.*/)?")  # "**/" : zero or more folders
                    i = j + 1
                    continue
                if at_start and j == n:
                    out.append(".*")  # trailing "/**": everything inside
                    i = j
                    continue
                out.append("[^/]*")
                i = j
                continue
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            j = i + 1
            if j < n and pattern[j] in "!^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1 : j]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                body = body.replace("\\", "\\\\")
                out.append(f"(?!/)[{body}]")
                i = j
        elif char == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    negated: bool
    dir_only: bool


def _parse_line(line: str) -> _Rule | None:
    line = line.rstrip("\n").rstrip("\r")
    if not line or line.startswith("#"):
        return None
    # Trailing spaces are dropped unless escaped with a backslash.
    stripped = line.rstrip(" ")
    if stripped.endswith("\\") and len(stripped) < len(line):
        stripped += " "
    line = stripped
    negated = line.startswith("!")
    if negated:
        line = line[1:]
    elif line.startswith("\\!") or line.startswith("\\#"):
        line = line[1:]
    dir_only = line.endswith("/")
    line = line.rstrip("/")
    if not line:
        return None
    anchored = "/" in line
    line = line.lstrip("/")
    body = _translate(line)
    source = f"^{body}$" if anchored else f"^(?:.*/)?{body}$"
    try:
        return _Rule(re.compile(source), negated, dir_only)
    except re.error:
        return None


@dataclass
class _RuleSet:
    """The rules of one ``.gitignore`` file, matched against paths relative to its folder."""

    rules: list[_Rule]
    combined_any: re.Pattern[str] | None = None
    combined_files: re.Pattern[str] | None = None

    def __post_init__(self) -> None:
        if self.rules and not any(rule.negated for rule in self.rules):
            self.combined_any = re.compile("|".join(f"(?:{r.regex.pattern})" for r in self.rules))
            file_rules = [r for r in self.rules if not r.dir_only]
            self.combined_files = (
                re.compile("|".join(f"(?:{r.regex.pattern})" for r in file_rules)) if file_rules else None
            )

    def verdict(self, rel: str, is_dir: bool) -> bool | None:
        """True (ignored), False (re-included by ``!``) or None (no rule matched)."""
        if self.combined_any is not None:
            combined = self.combined_any if is_dir else self.combined_files
            return True if combined is not None and combined.match(rel) else None
        for rule in reversed(self.rules):
            if rule.dir_only and not is_dir:
                continue
            if rule.regex.match(rel):
                return not rule.negated
        return None


def _read_rules(path: Path) -> _RuleSet | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    rules = [rule for rule in map(_parse_line, text.splitlines()) if rule is not None]
    return _RuleSet(rules) if rules else None


@dataclass
class IgnoreRules:
    """Ignore decisions for one workspace; ``.gitignore`` files are loaded once, on first use."""

    root: Path
    _sets: dict[str, _RuleSet | None] = field(default_factory=dict)
    _dir_cache: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def for_root(cls, root: Path | str) -> IgnoreRules:
        rules = cls(Path(os.path.realpath(root)))
        info_exclude = _read_rules(rules.root / ".git" / "info" / "exclude")
        root_rules = _read_rules(rules.root / ".gitignore")
        merged = (info_exclude.rules if info_exclude else []) + (root_rules.rules if root_rules else [])
        rules._sets[""] = _RuleSet(merged) if merged else None
        return rules

    def _rule_set(self, folder: str) -> _RuleSet | None:
        if folder not in self._sets:
            self._sets[folder] = _read_rules(self.root / folder / ".gitignore")
        return self._sets[folder]

    @staticmethod
    def builtin_ignored(name: str, is_dir: bool) -> bool:
        if is_dir:
            return name in BUILTIN_IGNORED_DIRS or name.endswith(_BUILTIN_DIR_SUFFIXES)
        return name.endswith(_BUILTIN_FILE_SUFFIXES)

    def _own_verdict(self, rel: str, is_dir: bool, folders: list[str]) -> bool:
        """Whether ``rel`` itself matches (ignoring its ancestors); ``folders`` are the folders
        from the root down to its parent, as workspace-relative prefixes ('' for the root)."""
        name = rel.rsplit("/", 1)[-1]
        if self.builtin_ignored(name, is_dir):
            return True
        if is_dir and os.path.isfile(self.root / rel / "pyvenv.cfg"):
            return True
        result = False
        for folder in folders:
            rule_set = self._rule_set(folder)
            if rule_set is None:
                continue
            sub = rel[len(folder) + 1 :] if folder else rel
            verdict = rule_set.verdict(sub, is_dir)
            if verdict is not None:
                result = verdict
        return result

    @staticmethod
    def _folders_down_to(folder: str) -> list[str]:
        """'' and every folder prefix of ``folder``: whose .gitignore files apply inside it."""
        if not folder:
            return [""]
        parts = folder.split("/")
        return ["", *("/".join(parts[:i]) for i in range(1, len(parts) + 1))]

    def _dir_ignored(self, folder: str) -> bool:
        """Whether a folder is ignored, itself or through a parent (cached: search tools ask often)."""
        cached = self._dir_cache.get(folder)
        if cached is None:
            parent = folder.rpartition("/")[0]
            cached = (bool(parent) and self._dir_ignored(parent)) or self._own_verdict(
                folder, True, self._folders_down_to(parent)
            )
            self._dir_cache[folder] = cached
        return cached

    def is_ignored(self, rel_path: str, is_dir: bool) -> bool:
        """Whether a workspace-relative POSIX path is ignored, itself or through a parent folder."""
        rel = rel_path.strip("/")
        if rel.startswith("./"):
            rel = rel[2:]
        if rel in ("", "."):
            return False
        if is_dir:
            return self._dir_ignored(rel)
        parent = rel.rpartition("/")[0]
        if parent and self._dir_ignored(parent):
            return True
        return self._own_verdict(rel, False, self._folders_down_to(parent))


def walk_entries(
    root: Path | str, rel_start: str = ".", rules: IgnoreRules | None = None
) -> Iterator[tuple[str, bool]]:
    """Yield ``(workspace-relative POSIX path, is_dir)`` for every entry not ignored, in sorted
    depth-first order. Symlinks are yielded only when they point inside the workspace, and
    symlinked folders are never entered (no loops, no escapes). Blocking: use from a thread."""
    root_real = Path(os.path.realpath(root))
    rules = rules or IgnoreRules.for_root(root_real)
    root_prefix = str(root_real) + os.sep
    start = Path(os.path.realpath(root_real / rel_start))
    if start != root_real and not str(start).startswith(root_prefix):
        return
    start_rel = "" if start == root_real else start.relative_to(root_real).as_posix()
    folders = [""]
    if start_rel:
        parts = start_rel.split("/")
        folders += ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    entries = _scan(start, rules, start_rel)
    if entries is not None:
        yield from _walk(rules, root_prefix, entries, start_rel, folders)


def _scan(folder: Path | str, rules: IgnoreRules, folder_rel: str) -> list[os.DirEntry[str]] | None:
    """Sorted entries of a folder; None for an unreadable folder or a virtualenv (pyvenv.cfg)."""
    try:
        with os.scandir(folder) as iterator:
            entries = sorted(iterator, key=lambda e: e.name)
    except OSError:
        return None
    names = {entry.name for entry in entries}
    if folder_rel and "pyvenv.cfg" in names:
        return None
    if folder_rel not in rules._sets and ".gitignore" not in names:
        rules._sets[folder_rel] = None  # spare the open() of a file we know is absent
    return entries


def _walk(
    rules: IgnoreRules, root_prefix: str, entries: list[os.DirEntry[str]], folder_rel: str, folders: list[str]
) -> Iterator[tuple[str, bool]]:
    rule_sets = [(f, s) for f in folders if (s := rules._rule_set(f)) is not None]
    for entry in entries:
        name = entry.name
        rel = f"{folder_rel}/{name}" if folder_rel else name
        try:
            is_link = entry.is_symlink()
            if is_link:
                target = os.path.realpath(entry.path)
                if not target.startswith(root_prefix):
                    continue
                is_dir = os.path.isdir(target)
            else:
                is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            continue
        if IgnoreRules.builtin_ignored(name, is_dir):
            continue
        ignored = False
        for base, rule_set in rule_sets:
            verdict = rule_set.verdict(rel[len(base) + 1 :] if base else rel, is_dir)
            if verdict is not None:
                ignored = verdict
        if ignored:
            continue
        if is_dir and not is_link:
            children = _scan(entry.path, rules, rel)
            if children is None:
                continue
            yield rel, True
            yield from _walk(rules, root_prefix, children, rel, [*folders, rel])
        else:
            yield rel, is_dir


def walk_files(root: Path | str, rel_start: str = ".", rules: IgnoreRules | None = None) -> Iterator[str]:
    """Yield the workspace-relative POSIX paths of all files not ignored (see :func:`walk_entries`)."""
    for rel, is_dir in walk_entries(root, rel_start, rules):
        if not is_dir:
            yield rel
