"""The workspace index behind getRelevantFiles: BM25 postings, imports and defined symbols.

One index per workspace root, built once in a worker thread and kept fresh cheaply: every call
stats the known folders and files; a folder whose mtime changed is walked again (new and
deleted files), a file whose (mtime, size) changed is indexed again, and a changed
``.gitignore`` re-walks everything. Imports and top-level symbols are extracted with line
regexes (fast enough for tens of thousands of files; ranking does not need a full parse).
"""

from __future__ import annotations

import math
import os
import posixpath
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from polaris_jupyter.tools.context_terms import (
    PY_SUFFIXES,
    PY_SYMBOL,
    TEXT_SUFFIXES,
    TS_SUFFIXES,
    TS_SYMBOL,
    module_keys,
    py_imports,
    terms_of,
    tested_stem,
    ts_imports,
)
from polaris_jupyter.tools.ignore import IgnoreRules, walk_entries

__all__ = ["MAX_INDEX_BYTES", "DocInfo", "WorkspaceIndex"]

#: Bytes of a file read for its terms, imports and symbols.
MAX_INDEX_BYTES = 256_000
MAX_INDEX_FILES = 200_000
PATH_TERM_WEIGHT = 3
#: Workspaces whose index is kept in memory (least recently used dropped first).
MAX_CACHED_ROOTS = 4
#: Folders are checked on every call (catches atomic writes, new and deleted files). Files'
#: (mtime, size) are swept round-robin at a rate that covers every file once per this interval
#: (a call after a long pause checks them all), so in-place edits by other programs show up
#: within it while back-to-back calls each pay for a slice only.
FILE_SWEEP_INTERVAL_S = 5.0
@dataclass
class DocInfo:
    rel: str
    doc_id: int
    mtime_ns: int
    size: int
    length: int
    terms: tuple[str, ...]
    imports: tuple[str, ...]
    symbols: frozenset[str]


class WorkspaceIndex:
    """See the module docstring. All methods block: call them from a worker thread."""

    _by_root: dict[str, WorkspaceIndex] = {}
    _class_lock = threading.Lock()

    def __init__(self, root: str) -> None:
        self.root = root
        self.lock = threading.Lock()
        self.built = False
        self._reset()

    def _reset(self) -> None:
        self.rules = IgnoreRules.for_root(self.root)
        self.docs: dict[str, DocInfo] = {}
        self.by_id: dict[int, str] = {}
        self.postings: dict[str, dict[int, int]] = {}
        self.total_length = 0
        self.dirs: dict[str, int] = {}
        self.ignore_files: dict[str, int] = {}
        self.importers: dict[str, set[str]] = {}  # import key → files importing it
        self.key_owner: dict[str, set[str]] = {}  # import key → files it may name
        self.symbol_defs: dict[str, set[str]] = {}  # symbol (exact case) → files defining it
        self.folder_files: dict[str, set[str]] = {}  # folder → files directly in it
        self.stem_files: dict[str, set[str]] = {}  # file name without extension → files
        self.test_files: dict[str, set[str]] = {}  # tested stem (``models`` for test_models.py) → test files
        self._next_id = 0
        self._last_sweep_s = 0.0
        self.pending: dict[str, None] = {}  # found by a walk, not indexed yet (ordered set)
        self._sweep_order: list[str] = []
        self._sweep_pos = 0

    @classmethod
    def for_root(cls, root: Path | str) -> WorkspaceIndex:
        key = os.path.realpath(root)
        with cls._class_lock:
            index = cls._by_root.pop(key, None) or WorkspaceIndex(key)
            cls._by_root[key] = index  # most recently used last
            while len(cls._by_root) > MAX_CACHED_ROOTS:
                cls._by_root.pop(next(iter(cls._by_root)))
            return index

    # -------------------------------------------------------------- documents

    def _add(self, rel: str, st: os.stat_result) -> None:
        text = ""
        suffix = posixpath.splitext(rel)[1].lower()
        if suffix in TEXT_SUFFIXES:
            try:
                with open(os.path.join(self.root, rel), "rb") as fh:
                    data = fh.read(MAX_INDEX_BYTES)
                if b"\x00" not in data:
                    text = data.decode("utf-8", "replace")
            except OSError:
                text = ""
        counts = terms_of(text)
        for part in rel.split("/"):
            for term in terms_of(part.replace(".", " ")):
                counts[term] += PATH_TERM_WEIGHT
        if suffix in PY_SUFFIXES:
            imports = py_imports(rel, text)
            symbols = {a or b for a, b in PY_SYMBOL.findall(text)}
        elif suffix in TS_SUFFIXES:
            imports = ts_imports(rel, text)
            symbols = set(TS_SYMBOL.findall(text))
        else:
            imports, symbols = [], set()
        doc = DocInfo(rel, self._next_id, st.st_mtime_ns, st.st_size, sum(counts.values()),
                      tuple(counts), tuple(dict.fromkeys(imports)), frozenset(s for s in symbols if len(s) > 1))
        self._next_id += 1
        self.docs[rel] = doc
        self.by_id[doc.doc_id] = rel
        self.total_length += doc.length
        for term, n in counts.items():
            self.postings.setdefault(term, {})[doc.doc_id] = n
        for key in doc.imports:
            self.importers.setdefault(key, set()).add(rel)
        for key in module_keys(rel):
            self.key_owner.setdefault(key, set()).add(rel)
        for sym in doc.symbols:
            self.symbol_defs.setdefault(sym, set()).add(rel)
        for table, key in self._name_keys(rel):
            table.setdefault(key, set()).add(rel)
        if posixpath.basename(rel) == ".gitignore":
            self.ignore_files[rel] = st.st_mtime_ns

    def _remove(self, rel: str) -> None:
        doc = self.docs.pop(rel, None)
        if doc is None:
            return
        self.by_id.pop(doc.doc_id, None)
        self.total_length -= doc.length
        for term in doc.terms:
            posting = self.postings.get(term)
            if posting is not None:
                posting.pop(doc.doc_id, None)
                if not posting:
                    del self.postings[term]
        pairs = [(self.importers, k) for k in doc.imports] + [(self.key_owner, k) for k in module_keys(rel)]
        pairs += [(self.symbol_defs, s) for s in doc.symbols] + self._name_keys(rel)
        for table, key in pairs:
            owners = table.get(key)
            if owners is not None:
                owners.discard(rel)
                if not owners:
                    del table[key]
        self.ignore_files.pop(rel, None)

    def _name_keys(self, rel: str) -> list[tuple[dict[str, set[str]], str]]:
        folder, base = posixpath.split(rel)
        stem = posixpath.splitext(base)[0]
        keys = [(self.folder_files, folder), (self.stem_files, stem)]
        subject = tested_stem(stem)
        if subject:
            keys.append((self.test_files, subject))
        return keys

    # -------------------------------------------------------------- freshness

    def _walk(self, start: str) -> set[str]:
        """Walk ``start`` (a folder, '' = root): record folders, add new/changed files; return files seen."""
        seen: set[str] = set()
        root_st = os.stat(os.path.join(self.root, start or "."))
        self.dirs[start] = root_st.st_mtime_ns
        for rel, is_dir in walk_entries(self.root, start or ".", self.rules):
            try:
                st = os.stat(os.path.join(self.root, rel))
            except OSError:
                continue
            if is_dir:
                self.dirs[rel] = st.st_mtime_ns
                continue
            if len(self.docs) + len(self.pending) >= MAX_INDEX_FILES and rel not in self.docs:
                continue
            seen.add(rel)
            doc = self.docs.get(rel)
            if doc is None or (doc.mtime_ns, doc.size) != (st.st_mtime_ns, st.st_size):
                self.pending[rel] = None
        return seen

    def _index_now(self, rel: str) -> None:
        self.pending.pop(rel, None)
        try:
            st = os.stat(os.path.join(self.root, rel))
        except OSError:
            self._remove(rel)
            return
        doc = self.docs.get(rel)
        if doc is None or (doc.mtime_ns, doc.size) != (st.st_mtime_ns, st.st_size):
            self._remove(rel)
            self._add(rel, st)

    def _drain(self, deadline_s: float | None) -> None:
        """Index pending files, oldest first, until done or ``deadline_s`` (monotonic) passes."""
        while self.pending:
            if deadline_s is not None and time.monotonic() >= deadline_s:
                return
            self._index_now(next(iter(self.pending)))

    @property
    def complete(self) -> bool:
        """False while files found by the walk still wait to be indexed (see ``budget_s``)."""
        return self.built and not self.pending

    def _under(self, folder: str, rel: str) -> bool:
        return not folder or rel.startswith(folder + "/")

    def refresh(self, also_check: Iterable[str] = (), budget_s: float | None = None) -> None:
        """Bring the index up to date with the disk (see the module docstring).

        ``also_check`` names files to re-stat even between sweeps (the current file, recent
        edits); they are also indexed first. With ``budget_s``, indexing new files stops after
        that long and goes on at the next call, so a first call on a huge tree answers in time.
        """
        deadline_s = None if budget_s is None else time.monotonic() + budget_s
        also_check = list(also_check)
        with self.lock:
            self._refresh_files(also_check)
            for rel in also_check:
                if rel in self.pending:
                    self._index_now(rel)
            self._drain(deadline_s)

    def _refresh_files(self, also_check: list[str]) -> None:
        """Folder and file (mtime, size) checks; new and changed files go to ``pending``."""
        if not self.built:
            self._walk("")
            self.built = True
            self._last_sweep_s = time.monotonic()
            return
        changed = self._changed_dirs()
        if self._ignore_rules_changed() or any(
            os.path.isfile(os.path.join(self.root, f, ".gitignore"))
            and posixpath.join(f, ".gitignore") not in self.ignore_files
            for f in changed
        ):
            old = dict(self.docs)
            self.rules = IgnoreRules.for_root(self.root)
            self.dirs = {}
            self.pending = {}
            seen = self._walk("")
            for rel in set(old) - seen:
                self._remove(rel)
            return
        outermost = [f for f in sorted(changed) if not any(f != o and self._under(o, f) for o in changed)]
        walked: list[str] = []
        for folder in outermost:
            for old_dir in [d for d in self.dirs if d != folder and self._under(folder, d)]:
                del self.dirs[old_dir]
            self.dirs.pop(folder, None)
            if not os.path.isdir(os.path.join(self.root, folder or ".")):
                for rel in [r for r in [*self.docs, *self.pending] if self._under(folder, r)]:
                    self._remove(rel)
                    self.pending.pop(rel, None)
                continue
            seen = self._walk(folder)
            for rel in [r for r in [*self.docs, *self.pending] if self._under(folder, r) and r not in seen]:
                self._remove(rel)
                self.pending.pop(rel, None)
            walked.append(folder)
        to_check = [r for r in also_check if r in self.docs] + self._sweep_slice()
        prefix = self.root + os.sep
        for rel in to_check:
            doc = self.docs.get(rel)
            if doc is None or (walked and any(self._under(folder, rel) for folder in walked)):
                continue
            try:
                st = os.stat(prefix + rel)
            except OSError:
                self._remove(rel)
                continue
            if (doc.mtime_ns, doc.size) != (st.st_mtime_ns, st.st_size):
                self._remove(rel)
                self._add(rel, st)

    def _sweep_slice(self) -> list[str]:
        """The next files of the round-robin sweep, as many as the time since the last call earns."""
        now = time.monotonic()
        elapsed_s, self._last_sweep_s = now - self._last_sweep_s, now
        total = len(self.docs)
        if FILE_SWEEP_INTERVAL_S <= 0 or elapsed_s >= FILE_SWEEP_INTERVAL_S:
            due = total
        else:
            due = min(total, math.ceil(total * elapsed_s / FILE_SWEEP_INTERVAL_S))
        picked: list[str] = []
        while len(picked) < due:
            if self._sweep_pos >= len(self._sweep_order):
                self._sweep_order, self._sweep_pos = list(self.docs), 0
                if not self._sweep_order:
                    break
            take = self._sweep_order[self._sweep_pos : self._sweep_pos + due - len(picked)]
            self._sweep_pos += len(take)
            picked += [rel for rel in take if rel in self.docs]
            if len(take) == 0:
                break
        return picked

    def _changed_dirs(self) -> list[str]:
        changed = []
        prefix = self.root + os.sep
        for folder, mtime_ns in self.dirs.items():
            try:
                if os.stat(prefix + folder if folder else self.root).st_mtime_ns != mtime_ns:
                    changed.append(folder)
            except OSError:
                changed.append(folder)
        return changed

    def _ignore_rules_changed(self) -> bool:
        for rel, mtime_ns in self.ignore_files.items():
            try:
                if os.stat(os.path.join(self.root, rel)).st_mtime_ns != mtime_ns:
                    return True
            except OSError:
                return True
        return False
