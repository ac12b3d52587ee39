"""Text features of one file for the context index: search terms, imports, symbols, names.

Line regexes rather than parsers: fast enough for tens of thousands of files, and ranking only
needs to be roughly right. Terms are whole identifiers plus their camelCase/snake_case parts.
"""

from __future__ import annotations

import posixpath
import re
from collections import Counter

__all__ = [
    "PY_SUFFIXES",
    "PY_SYMBOL",
    "TEXT_SUFFIXES",
    "TS_SUFFIXES",
    "TS_SYMBOL",
    "identifiers_of",
    "module_keys",
    "py_imports",
    "terms_of",
    "tested_stem",
    "ts_imports",
]

TEXT_SUFFIXES = frozenset(
    ".py .pyi .ts .tsx .mts .cts .js .jsx .mjs .cjs .md .rst .txt .json .toml .yaml .yml .cfg .ini .html .css "
    ".scss .sh .sql .ipynb .go .rs .java .kt .c .h .cpp .hpp .rb .php .vue .svelte .r .jl .scala .swift".split()
)
PY_SUFFIXES = (".py", ".pyi")
TS_SUFFIXES = (".ts", ".tsx", ".mts", ".cts", ".js", ".jsx", ".mjs", ".cjs")

_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]{1,63}")
_SUBWORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_STOP = frozenset(
    "the and for with this that from import def class return self none true false not are was were have has "
    "but you your can will use used using into its all any also get set let var const new function export "
    "default if else elif while try except finally raise pass in is of to or on at as by be it an".split()
)
_PY_IMPORT = re.compile(
    r"^[ \t]*(?:from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n#]+)|import[ \t]+([^\n#]+))", re.M
)
PY_SYMBOL = re.compile(r"^(?:async[ \t]+def|def|class)[ \t]+(\w+)|^([A-Za-z_]\w*)[ \t]*(?::[^=\n]*)?=[^=]", re.M)
_TS_IMPORT = re.compile(
    r"""(?:^|[;\s])(?:import|export)\b[^'";]*?\bfrom\s*['"]([^'"\n]+)['"]|\bimport\s*\(?\s*['"]([^'"\n]+)['"]"""
    r"""|\brequire\s*\(\s*['"]([^'"\n]+)['"]\s*\)""",
    re.M,
)
TS_SYMBOL = re.compile(
    r"^[ \t]*(?:export[ \t]+)?(?:default[ \t]+)?(?:declare[ \t]+)?(?:abstract[ \t]+)?(?:async[ \t]+)?"
    r"(?:function\*?|class|interface|type|enum|const|let|var)[ \t]+([A-Za-z_$][\w$]*)",
    re.M,
)
_term_memo: dict[str, tuple[str, ...]] = {}


def _ident_terms(ident: str) -> tuple[str, ...]:
    """The terms one identifier contributes (memoised: identifiers repeat across files)."""
    cached = _term_memo.get(ident)
    if cached is None:
        low = ident.lower()
        parts = [p.lower() for p in _SUBWORD.findall(ident)]
        terms = [] if low in _STOP else [low]
        terms += [p for p in dict.fromkeys(parts) if len(p) > 1 and p not in _STOP and p != low]
        cached = tuple(terms)
        if len(_term_memo) < 2_000_000:
            _term_memo[ident] = cached
    return cached


def terms_of(text: str) -> Counter[str]:
    """Search terms of a text: whole identifiers (lower-cased) plus their camel/snake parts."""
    out: dict[str, int] = {}
    get = out.get
    memo = _term_memo
    for ident, n in Counter(_IDENT.findall(text)).items():
        terms = memo.get(ident)
        if terms is None:
            terms = _ident_terms(ident)
        for term in terms:
            out[term] = get(term, 0) + n
    return Counter(out)


def identifiers_of(text: str) -> set[str]:
    """The identifiers a text mentions, exact case (to match definitions by name)."""
    return set(_IDENT.findall(text))


def module_keys(rel: str) -> list[str]:
    """Names other files use to import ``rel``: dotted module names (Python) or paths without
    extension (TS/JS; a folder for ``index.*``)."""
    stem, suffix = posixpath.splitext(rel)
    if suffix in PY_SUFFIXES:
        parts = stem.split("/")
        if parts[-1] == "__init__":
            parts = parts[:-1]
        return [".".join(parts[i:]) for i in range(len(parts)) if len(parts) - i >= 2 or i == 0] if parts else []
    if suffix in TS_SUFFIXES:
        keys = [stem[:-2] if stem.endswith(".d") else stem]
        if posixpath.basename(stem) == "index":
            keys.append(posixpath.dirname(stem))
        return keys
    return []


def tested_stem(stem: str) -> str | None:
    """``models`` for ``test_models`` / ``models_test`` / ``models.test`` / ``models.spec``."""
    if stem.startswith("test_"):
        return stem[5:] or None
    for suffix in ("_test", ".test", ".spec"):
        if stem.endswith(suffix):
            return stem[: -len(suffix)] or None
    return None


def py_imports(rel: str, text: str) -> list[str]:
    package = rel.split("/")[:-1]
    out: list[str] = []
    for match in _PY_IMPORT.finditer(text):
        module, names, plain = match.group(1), match.group(2), match.group(3)
        if plain is not None:
            out += [part.split(" as ")[0].strip() for part in plain.split(",") if part.strip()]
            continue
        level = len(module) - len(module.lstrip("."))
        base = module.lstrip(".")
        if level:
            prefix = package[: len(package) - (level - 1)] if level - 1 <= len(package) else []
            base = ".".join([*prefix, base] if base else prefix)
        if base:
            out.append(base)
        for name in names.strip("() \t\n").split(","):
            name = name.split(" as ")[0].strip()
            if name and name != "*" and name.isidentifier():
                out.append(f"{base}.{name}" if base else name)
    return out


def ts_imports(rel: str, text: str) -> list[str]:
    out: list[str] = []
    for match in _TS_IMPORT.finditer(text):
        spec = match.group(1) or match.group(2) or match.group(3)
        if spec and spec.startswith("."):
            joined = posixpath.normpath(posixpath.join(posixpath.dirname(rel), spec))
            out.append(re.sub(r"\.(ts|tsx|js|jsx|mjs|cjs|mts|cts)$", "", joined))
        elif spec:
            out.append(spec)
    return out
