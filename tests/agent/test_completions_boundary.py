"""Where a suggestion ends: the streaming trimmer, fed token by token as a model would."""

from __future__ import annotations

import pytest

from polaris_jupyter.agent.completions_boundary import SuggestionTrimmer, stop_sequences


def trim(prefix: str, suffix: str, pieces: list[str], language: str = "python", *, chat: bool = False,
         max_lines: int = 16) -> tuple[str, list[str]]:
    """Feed the pieces; return the suggestion and what was released after each piece."""
    trimmer = SuggestionTrimmer(prefix, suffix, language, chat=chat, max_lines=max_lines)
    released = []
    for piece in pieces:
        released.append(trimmer.feed(piece))
        if trimmer.done:
            break
    else:
        released.append(trimmer.finish())
    assert "".join(released) == trimmer.text  # what was shown is never taken back
    return trimmer.text, released


@pytest.mark.parametrize(("prefix", "suffix", "pieces", "expected"), [
    # the rest of a statement, and the line after the cursor is not repeated
    ("def add(a, b):\n    result =", "\n    return result\n", [" a", " + b\n", "    return result\n"], " a + b"),
    # a Python block ends when the text comes back to the cursor's indent ...
    ("for x in y:\n    ", "", ["if x:\n", "        print(x)\n", "    z = 1\n"], "if x:\n        print(x)"),
    # ... unless the line continues the statement
    ("for x in y:\n    ", "", ["if x:\n", "        a()\n", "    else:\n", "        b()\n", "    c()\n"],
     "if x:\n        a()\n    else:\n        b()"),
    ("", "", ["try:\n", "    f()\n", "except OSError:\n", "    pass\n", "g()\n"], "try:\n    f()\nexcept OSError:\n    pass"),
    # sibling statements go on until a blank line
    ("def f():\n", "", ["    a = 1\n", "    b = 2\n", "\n", "def g(): pass"], "    a = 1\n    b = 2"),
    # a line left of the cursor's indent ends it
    ("def f(x):\n    y =", "", [" x + 1\n", "    return y\n", "print(f(2))\n"], " x + 1\n    return y"),
    # inside brackets nothing ends it (also brackets opened on the cursor's line)
    ("x = foo(", "", ["a,\n", "\n", "    b,\n", ")\n", "y = 2\n\n"], "a,\n\n    b,\n)"),
    # the body of a def on the cursor's line
    ("def f(x):", "", ["\n", "    return x\n", "\n", "def g():\n"], "\n    return x"),
])
def test_python_boundaries(prefix: str, suffix: str, pieces: list[str], expected: str) -> None:
    assert trim(prefix, suffix, pieces)[0] == expected


def test_brace_language_keeps_the_block_whole() -> None:
    pieces = ["if (x) {\n", "    y();\n", "  }\n", "  z();\n", "}\n"]
    assert trim("function f() {\n  ", "\n}", pieces, "javascript")[0] == "if (x) {\n    y();\n  }"


@pytest.mark.parametrize(("prefix", "suffix", "pieces", "expected"), [
    ("print(", ")", ["f(", "x", ")", ")", "\n", "more"], "f(x)"),  # the model repeated the closer
    ("print(", ")", ["f(", "x", ")", "\n"], "f(x)"),  # it did not: keep it
    ("x = [", "]", ["1, 2"], "1, 2"),
    ("name = ", " # the name\n", ["'polaris'", "  \n"], "'polaris'"),
])
def test_cursor_mid_line_completes_the_line_only(prefix: str, suffix: str, pieces: list[str], expected: str) -> None:
    assert stop_sequences(suffix) == ["\n"]
    assert trim(prefix, suffix, pieces)[0] == expected


def test_first_line_streams_before_the_line_is_complete() -> None:
    _, released = trim("x = ", "", ["compute", "(a", ", b)", "\n", "y = 1"])
    assert released[:3] == ["compute", "(a", ", b)"]  # ghost text grows with every token


def test_later_lines_are_shown_when_complete() -> None:
    _, released = trim("def f():\n    ", "", ["a = 1\n", "    b", " = 2\n", "    c = 3"])
    assert released == ["a = 1", "", "\n    b = 2", "", "\n    c = 3"]  # the last line at the end


def test_trailing_whitespace_waits_for_more_text() -> None:
    text, released = trim("x = ", "", ["1 ", " ", "+ 2 "])
    assert released == ["1", "", "  + 2", ""] and text == "1  + 2"


@pytest.mark.parametrize(("pieces", "expected"), [
    (["```python\n", "    result = a + b\n", "```\n"], " + b"),
    (["``", "`\n", "result = a * b"], " * b"),
    (["result = a - b\n", "```"], " - b"),
    ([" + 1"], " + 1"),
])
def test_chat_answers_lose_fences_and_the_repeated_cursor_line(pieces: list[str], expected: str) -> None:
    assert trim("    result = a", "", pieces, chat=True)[0] == expected


def test_max_lines_bounds_a_long_suggestion() -> None:
    pieces = [f"    x{i} = {i}\n" for i in range(10)]
    assert trim("def f():\n", "", pieces, max_lines=3)[0] == "    x0 = 0\n    x1 = 1\n    x2 = 2"


def test_a_rewrite_of_the_next_line_is_dropped() -> None:
    assert trim("def f(a, b):\n    ", "\n    return c\n", ["return c\n", "\n"])[0] == ""


def test_carriage_returns_are_dropped() -> None:
    assert trim("x = ", "", ["1\r\n", "\r\n"])[0] == "1"
