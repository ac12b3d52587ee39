"""TypeScript/JavaScript navigation through tree-sitter: definitions and references.

There is no type checker in-process, so this is syntax-aware rather than type-aware:
definitions are found through lexical scopes and one hop through relative imports (then by
name across the workspace), references are same-name identifiers.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable
from typing import Any

from polaris_jupyter.tools.base import ToolError
from polaris_jupyter.tools.code_python import Location as Loc
from polaris_jupyter.tools.code_ts import (
    _DECL_KIND,
    _RESOLVE_SUFFIXES,
    _SCOPE_TYPES,
    IDENTIFIER_TYPES,
    _Positions,
    _string_value,
    _text,
    _walk,
    looks_minified,
    parse,
)
from polaris_jupyter.tools.ignore import walk_files
from polaris_jupyter.tools.outline import Language, OutlineCache, language_of

__all__ = [
    "best_binding",
    "binding_kind",
    "identifier_at",
    "import_source_of",
    "local_bindings",
    "resolve_ts_import",
    "same_name_identifiers",
    "ts_definitions",
    "ts_references",
]

MAX_LOCATIONS = 50


def identifier_at(tree: Any, source: bytes, line: int, column: int) -> Any | None:
    """The identifier node at 1-based ``line``/``column`` (character based), or None."""
    lines = source.split(b"\n")
    if line > len(lines):
        return None
    text = lines[line - 1].decode("utf-8", "replace")
    byte_col = len(text[: column - 1].encode("utf-8"))
    point = (line - 1, byte_col)
    node = tree.root_node.named_descendant_for_point_range(point, point)
    if node is not None and node.type not in IDENTIFIER_TYPES and byte_col > 0:
        # the cursor may sit just after the name (``foo|(``): look one character to the left
        prev = (line - 1, byte_col - 1)
        node = tree.root_node.named_descendant_for_point_range(prev, prev)
    return node if node is not None and node.type in IDENTIFIER_TYPES else None


def _scope_of(node: Any) -> Any:
    parent = node.parent
    while parent is not None and parent.type not in _SCOPE_TYPES:
        parent = parent.parent
    return parent


def _binding_names(node: Any) -> list[tuple[Any, str]]:
    """(name node, what) pairs that ``node`` binds, if it is a declaration/parameter/import."""
    kind = node.type
    if kind in _DECL_KIND or kind == "variable_declarator":
        name = node.child_by_field_name("name")
        if name is None:
            return []
        if name.type in IDENTIFIER_TYPES:
            return [(name, kind)]
        return [(n, kind) for n in _walk(name) if n.type in {"identifier", "shorthand_property_identifier_pattern"}]
    if kind in {"required_parameter", "optional_parameter"}:
        pattern = node.child_by_field_name("pattern")
        return [(pattern, "parameter")] if pattern is not None and pattern.type == "identifier" else []
    if kind == "formal_parameters":
        return [(c, "parameter") for c in node.named_children if c.type == "identifier"]
    if kind == "import_specifier":
        bound = node.child_by_field_name("alias") or node.child_by_field_name("name")
        return [(bound, "import")] if bound is not None else []
    if kind in {"import_clause", "namespace_import"}:
        return [(c, "import") for c in node.named_children if c.type == "identifier"]
    return []


def binding_kind(what: str) -> str:
    """A readable kind for a binding node type from :func:`local_bindings`."""
    if what in _DECL_KIND:
        return _DECL_KIND[what].value
    return "variable" if what == "variable_declarator" else what


def local_bindings(tree: Any, name: str) -> list[tuple[Any, str]]:
    """Every node in the file that binds ``name`` (declarations, parameters, imports)."""
    return [(n, what) for node in _walk(tree.root_node) for n, what in _binding_names(node) if _text(n) == name]


def _contains(outer: Any, inner: Any) -> bool:
    return outer.start_byte <= inner.start_byte and inner.end_byte <= outer.end_byte


def _depth(node: Any) -> int:
    depth = 0
    while node.parent is not None:
        node, depth = node.parent, depth + 1
    return depth


def best_binding(tree: Any, usage: Any) -> tuple[Any, str] | None:
    """The binding of ``usage`` whose scope encloses it most closely (lexical lookup)."""
    candidates = []
    for bound, what in local_bindings(tree, _text(usage)):
        if bound.start_byte == usage.start_byte:
            return bound, what
        scope = _scope_of(bound.parent if what in {"function_declaration", "class_declaration"} else bound)
        if what == "parameter":
            scope = _scope_of(bound.parent) or scope
        if scope is None or _contains(scope, usage):
            candidates.append((_depth(scope) if scope is not None else 0, -bound.start_byte, bound, what))
    if not candidates:
        return None
    candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
    return candidates[0][2], candidates[0][3]


def import_source_of(bound: Any) -> tuple[str, str] | None:
    """For an import binding: (module specifier, name exported by that module)."""
    node = bound.parent
    imported = _text(bound)
    if node.type == "import_specifier":
        imported = _text(node.child_by_field_name("name"))
    elif node.type == "import_clause":
        imported = "default"
    elif node.type == "namespace_import":
        imported = "*"
    while node is not None and node.type != "import_statement":
        node = node.parent
    if node is None:
        return None
    source = node.child_by_field_name("source")
    return (_string_value(source), imported) if source is not None else None


def resolve_ts_import(from_rel: str, spec: str, exists: Callable[[str], bool]) -> str | None:
    """Workspace-relative file a relative import ``spec`` in ``from_rel`` points to, if any."""
    if not spec.startswith("."):
        return None
    base = posixpath.normpath(posixpath.join(posixpath.dirname(from_rel), spec))
    if base.startswith(".."):
        return None
    stem = re.sub(r"\.(m|c)?js$", "", base)
    candidates = [base] + [stem + suffix for suffix in _RESOLVE_SUFFIXES]
    candidates += [f"{base}/index{suffix}" for suffix in _RESOLVE_SUFFIXES]
    return next((c for c in candidates if exists(c)), None)


def same_name_identifiers(tree: Any, source: bytes, name: str) -> list[tuple[int, int]]:
    """1-based (line, column) of every identifier spelled ``name`` in one parsed file."""
    import tree_sitter

    if not re.fullmatch(r"[\w$]+", name):
        return []
    ts_language = tree.language
    kinds = [kind for kind in sorted(IDENTIFIER_TYPES) if ts_language.id_for_node_kind(kind, True)]
    query = tree_sitter.Query(ts_language, "\n".join(f'(({kind}) @id (#eq? @id "{name}"))' for kind in kinds))
    pos = _Positions(source)
    nodes: list[Any] = tree_sitter.QueryCursor(query).captures(tree.root_node).get("id", [])
    return sorted({pos.of(node) for node in nodes})


def _ts_identifier(source: bytes, language: Language, line: int, column: int) -> tuple[Any, Any]:
    tree = parse(source, language)
    node = identifier_at(tree, source, line, column)
    if node is None:
        raise ToolError(f"no identifier at line {line}, column {column} (positions are 1-based)")
    return tree, node


def ts_definitions(root: str, rel: str, source: bytes, language: Language, line: int, column: int) -> list[Loc]:
    tree, node = _ts_identifier(source, language, line, column)
    name = node.text.decode("utf-8", "replace")
    lines = source.decode("utf-8", "replace").split("\n")

    def loc(path: str, ln: int, col: int, kind: str, text_lines: list[str]) -> Loc:
        snippet = text_lines[ln - 1].strip()[:200] if ln <= len(text_lines) else ""
        return Loc(path, ln, col, snippet, kind, name)

    binding = best_binding(tree, node) if node.type != "property_identifier" else None
    if binding is not None:
        bound, what = binding
        start_line, start_col = bound.start_point[0] + 1, bound.start_point[1]
        label = binding_kind(what)
        here = loc(rel, start_line, len(lines[start_line - 1].encode()[:start_col].decode("utf-8", "ignore")) + 1,
                   label, lines)
        if what != "import":
            return [here]
        source_info = import_source_of(bound)
        if source_info is None:
            return [here]
        spec, exported = source_info
        target = resolve_ts_import(rel, spec, lambda p: os.path.isfile(os.path.join(root, p)))
        if target is None:
            return [Loc(here.path, here.line, here.column, here.snippet + f"  (module {spec!r} is outside the workspace)",
                        "import", name)]
        outline = OutlineCache.for_root(root).get(target)
        if outline is not None:
            with open(os.path.join(root, target), encoding="utf-8", errors="replace") as fh:
                target_lines = fh.read().split("\n")
            wanted = exported
            if exported == "default":
                wanted = next((e.name for e in outline.exports if e.detail == "default"), name)
            defs = [s for s in outline.symbols if s.name == wanted and s.top_level]
            if defs:
                return [loc(target, s.line, s.column, s.kind.value, target_lines) for s in defs]
        return [Loc(target, 1, 1, f"module imported as {spec!r}", "module", name)]
    # no lexical binding (a property, a global): definitions with that name across the workspace
    found: list[Loc] = []
    cache = OutlineCache.for_root(root)
    for other in walk_files(root):
        if language_of(other) in (None, Language.PYTHON):
            continue
        outline = cache.get(other, must_contain=name.lower().encode())
        for sym in outline.symbols if outline is not None else []:
            if sym.name == name:
                found.append(Loc(other, sym.line, sym.column, f"{sym.kind.value} {sym.name} (matched by name)",
                                 sym.kind.value, name))
        if len(found) >= MAX_LOCATIONS:
            break
    return found


def ts_references(root: str, rel: str, source: bytes, language: Language, line: int, column: int) -> list[Loc]:
    _, node = _ts_identifier(source, language, line, column)
    name = node.text.decode("utf-8", "replace")
    needle = name.encode()
    found: list[Loc] = []
    for other in walk_files(root):
        other_lang = language_of(other)
        if other_lang in (None, Language.PYTHON):
            continue
        try:
            with open(os.path.join(root, other), "rb") as fh:
                data = fh.read(2_000_000)
        except OSError:
            continue
        if needle not in data or looks_minified(data):
            continue
        assert other_lang is not None
        text_lines = data.decode("utf-8", "replace").split("\n")
        for ln, col in same_name_identifiers(parse(data, other_lang), data, name):
            found.append(Loc(other, ln, col, text_lines[ln - 1].strip()[:200], "reference", name))
        if len(found) > MAX_LOCATIONS:
            break
    return found
