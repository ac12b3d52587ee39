"""TypeScript/JavaScript parsing through tree-sitter: parsers, outlines, positions.

Navigation lives in ``code_ts_nav`` and diagnostics (syntax errors + ``tsc``) in ``code_tsc``;
both build on the parsers and helpers here.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from typing import Any

from polaris_jupyter.tools.outline import (
    CodeRef,
    Language,
    Outline,
    SymbolDef,
    SymbolKind,
    SyntaxIssue,
)

__all__ = [
    "IDENTIFIER_TYPES",
    "MINIFIED_AVG_LINE_BYTES",
    "MISSING_HINT",
    "available",
    "looks_minified",
    "parse",
    "ts_outline",
]

#: Average bytes per line above which a file is treated as minified/bundled (no outline).
MINIFIED_AVG_LINE_BYTES = 400
IDENTIFIER_TYPES = frozenset(
    {"identifier", "type_identifier", "property_identifier", "shorthand_property_identifier",
     "shorthand_property_identifier_pattern", "private_property_identifier"}
)
_DECL_KIND = {
    "function_declaration": SymbolKind.FUNCTION,
    "generator_function_declaration": SymbolKind.FUNCTION,
    "function_signature": SymbolKind.FUNCTION,
    "method_definition": SymbolKind.FUNCTION,
    "method_signature": SymbolKind.FUNCTION,
    "abstract_method_signature": SymbolKind.FUNCTION,
    "class_declaration": SymbolKind.CLASS,
    "abstract_class_declaration": SymbolKind.CLASS,
    "interface_declaration": SymbolKind.INTERFACE,
    "type_alias_declaration": SymbolKind.TYPE,
    "enum_declaration": SymbolKind.TYPE,
}
_SCOPE_TYPES = frozenset(
    {"program", "statement_block", "function_declaration", "generator_function_declaration",
     "function_expression", "function", "arrow_function", "method_definition", "class_body",
     "for_statement", "for_in_statement", "catch_clause"}
)
_FUNCTION_VALUES = frozenset({"arrow_function", "function_expression", "function", "generator_function"})
_RESOLVE_SUFFIXES = (".ts", ".tsx", ".d.ts", ".mts", ".cts", ".js", ".jsx", ".mjs", ".cjs")

_local = threading.local()
MISSING_HINT = (
    "TypeScript/JavaScript analysis needs tree-sitter: pip install tree-sitter tree-sitter-typescript "
    "tree-sitter-javascript"
)


@functools.cache
def available() -> bool:
    """Whether the tree-sitter packages are installed (TS/JS tools degrade without them)."""
    try:
        import tree_sitter  # noqa: F401
        import tree_sitter_javascript  # noqa: F401
        import tree_sitter_typescript  # noqa: F401
    except ImportError:
        return False
    return True


def _parser(language: Language) -> Any:
    """One tree-sitter parser per thread and language (parsers are not thread-safe)."""
    parsers: dict[Language, Any] = getattr(_local, "parsers", None) or {}
    _local.parsers = parsers
    if language not in parsers:
        import tree_sitter

        if language is Language.JAVASCRIPT:
            import tree_sitter_javascript

            capsule = tree_sitter_javascript.language()
        else:
            import tree_sitter_typescript

            capsule = (
                tree_sitter_typescript.language_tsx()
                if language is Language.TSX
                else tree_sitter_typescript.language_typescript()
            )
        parsers[language] = tree_sitter.Parser(tree_sitter.Language(capsule))
    return parsers[language]


def parse(source: bytes, language: Language) -> Any:
    return _parser(language).parse(source)


def _text(node: Any) -> str:
    return node.text.decode("utf-8", "replace") if node is not None and node.text is not None else ""


def _walk(node: Any) -> Iterator[Any]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


class _Positions:
    """Byte points → 1-based (line, character column); per-line ASCII check cached."""

    def __init__(self, source: bytes) -> None:
        self.lines = source.split(b"\n")
        self._ascii: dict[int, bool] = {}

    def of(self, node: Any) -> tuple[int, int]:
        row, byte_col = node.start_point
        if row >= len(self.lines):
            return row + 1, byte_col + 1
        ascii_line = self._ascii.get(row)
        if ascii_line is None:
            ascii_line = self._ascii[row] = self.lines[row].isascii()
        if ascii_line:
            return row + 1, byte_col + 1
        return row + 1, len(self.lines[row][:byte_col].decode("utf-8", "ignore")) + 1


def _head(source: bytes, node: Any, limit: int = 200) -> str:
    """The first ``limit`` bytes of a node's text (never copies a whole bundle)."""
    end = min(node.end_byte, node.start_byte + limit)
    return source[node.start_byte : end].decode("utf-8", "replace")


def looks_minified(source: bytes) -> bool:
    """Bundles and minified files: long lines on average; not worth a syntax outline."""
    lines = source.count(b"\n") + 1
    return len(source) > 20_000 and len(source) / lines > MINIFIED_AVG_LINE_BYTES


def _string_value(node: Any) -> str:
    return _text(node).strip("\"'`")


def _enclosing_class(node: Any) -> str | None:
    parent = node.parent
    while parent is not None:
        if parent.type in {"class_declaration", "abstract_class_declaration", "class", "interface_declaration"}:
            return _text(parent.child_by_field_name("name")) or None
        parent = parent.parent
    return None


def _is_top_level(node: Any) -> bool:
    parent = node.parent
    while parent is not None and parent.type in {"export_statement", "lexical_declaration", "variable_declaration"}:
        parent = parent.parent
    return parent is None or parent.type == "program"


def _outline_query(language: Language) -> Any:
    """One compiled query per language capturing everything an outline needs."""
    queries: dict[Language, Any] = getattr(_local, "queries", None) or {}
    _local.queries = queries
    if language not in queries:
        import tree_sitter

        ts_language = _parser(language).language
        patterns = [f"({kind} name: (_) @{kind})" for kind in _DECL_KIND if ts_language.id_for_node_kind(kind, True)]
        patterns += [
            "(variable_declarator name: (identifier) @variable_declarator)",
            "(import_statement source: (string) @import)",
            "(export_statement) @export",
            "(call_expression function: (_) @call)",
            "(new_expression constructor: (_) @new)",
        ]
        queries[language] = tree_sitter.Query(ts_language, "\n".join(patterns))
    return queries[language]


def ts_outline(text: str, language: Language) -> Outline:
    """Symbols, imports (incl. ``require``), exports, calls and syntax errors of one TS/JS file.

    Uses a tree-sitter query (matching runs in C) rather than visiting every node in Python;
    minified bundles get an empty outline.
    """
    import tree_sitter

    source = text.encode("utf-8")
    out = Outline(language=language)
    if looks_minified(source):
        return out
    tree = parse(source, language)
    pos = _Positions(source)
    captures: dict[str, list[Any]] = tree_sitter.QueryCursor(_outline_query(language)).captures(tree.root_node)
    for kind, sym_kind in _DECL_KIND.items():
        for name in captures.get(kind, ()):
            node = name.parent
            line, col = pos.of(name)
            out.symbols.append(
                SymbolDef(_head(source, name), sym_kind, line, col, _enclosing_class(node), _is_top_level(node))
            )
    for name in captures.get("variable_declarator", ()):
        node = name.parent
        if _is_top_level(node.parent):
            value = node.child_by_field_name("value")
            sym_kind = SymbolKind.FUNCTION if value is not None and value.type in _FUNCTION_VALUES else SymbolKind.VARIABLE
            line, col = pos.of(name)
            out.symbols.append(SymbolDef(_head(source, name), sym_kind, line, col, None, True))
    for source_node in captures.get("import", ()):
        line, col = pos.of(source_node.parent)
        out.imports.append(CodeRef(_string_value(source_node), line, col, _head(source, source_node.parent).split("\n")[0]))
    for node in captures.get("export", ()):
        source_node = node.child_by_field_name("source")
        if source_node is not None:
            line, col = pos.of(node)
            out.imports.append(CodeRef(_string_value(source_node), line, col, _head(source, node).split("\n")[0]))
        _collect_exports(node, pos, out)
    for capture, prefix in (("call", ""), ("new", "new ")):
        for callee in captures.get(capture, ()):
            node = callee.parent
            line, col = pos.of(node)
            callee_text = _head(source, callee, 120)
            if callee_text == "require" or callee.type == "import":
                args = node.child_by_field_name("arguments")
                first = args.named_children[0] if args is not None and args.named_children else None
                if first is not None and first.type == "string":
                    out.imports.append(CodeRef(_string_value(first), line, col, _head(source, node)))
            out.calls.append(CodeRef(prefix + " ".join(callee_text.split()), line, col))
    if tree.root_node.has_error:
        _collect_errors(tree.root_node, pos, out)
    for items in (out.symbols, out.imports, out.exports, out.calls):
        items.sort(key=lambda item: (item.line, item.column))
    return out


def _collect_errors(root: Any, pos: _Positions, out: Outline) -> None:
    """ERROR and MISSING nodes, descending only into subtrees that hold an error."""
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            line, col = pos.of(node)
            message = f"missing {node.type}" if node.is_missing else f"unexpected {node.text[:40].decode('utf-8', 'replace')!r}"
            out.errors.append(SyntaxIssue(line, col, f"syntax error: {message}"))
        stack.extend(child for child in reversed(node.children) if child.has_error or child.is_missing)
    out.errors.sort(key=lambda issue: (issue.line, issue.column))


def _collect_exports(node: Any, pos: _Positions, out: Outline) -> None:
    line, col = pos.of(node)
    is_default = any(child.type == "default" for child in node.children)
    declaration = node.child_by_field_name("declaration")
    if declaration is not None:
        names = [declaration.child_by_field_name("name")]
        if declaration.type in {"lexical_declaration", "variable_declaration"}:
            names = [d.child_by_field_name("name") for d in declaration.named_children if d.type == "variable_declarator"]
        for name in names:
            if name is not None:
                out.exports.append(CodeRef(_text(name), line, col, "default" if is_default else ""))
        return
    clause = next((c for c in node.named_children if c.type == "export_clause"), None)
    if clause is not None:
        for spec in clause.named_children:
            alias = spec.child_by_field_name("alias") or spec.child_by_field_name("name")
            out.exports.append(CodeRef(_text(alias), line, col, _text(spec)))
    elif is_default:
        value = node.child_by_field_name("value")
        out.exports.append(CodeRef("default", line, col, _text(value)[:80] if value is not None else ""))
    elif node.child_by_field_name("source") is not None:
        out.exports.append(CodeRef("*", line, col, _text(node)[:200]))
