"""The path sandbox: text checks, resolution, symlinks, protected folders and atomic writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from polaris_jupyter.tools.base import ToolError
from polaris_jupyter.tools.sandbox import (
    atomic_write_bytes,
    check_path_text,
    relative_to_root,
    remove_path,
    resolve_entry_path,
    resolve_path,
    resolve_writable_path,
)
from tests.tools.conftest import snapshot

BAD_PATHS = [
    ("../outside/secret.txt", "outside"),
    ("..", "outside"),
    ("a/../../outside", "outside"),
    ("a/b/../../../x", "outside"),
    ("./../x", "outside"),
    ("/etc/passwd", "absolute"),
    ("//etc/passwd", "absolute"),
    ("\\etc\\passwd", "absolute"),
    ("\\\\server\\share\\x", "absolute"),
    ("C:\\Windows\\win.ini", "Windows"),
    ("c:/x", "Windows"),
    ("..\\..\\outside\\secret.txt", "outside"),
    ("a\\..\\..\\x", "outside"),
    ("~", "home"),
    ("~/.ssh/id_rsa", "home"),
    ("~root/.bashrc", "home"),
    ("a\x00b", "NUL"),
    ("a.txt\x00.png", "NUL"),
    ("a\nb", "control"),
    ("a\tb", "control"),
    ("\x1b[31mred", "control"),
    ("evil\u202etxt.py", "invisible"),  # right-to-left override
    ("a\u200bb", "invisible"),  # zero-width space
    ("a\ufeffb", "invisible"),  # BOM / zero-width no-break space
    ("%2e%2e/secret.txt", "decoded"),
    ("%2e%2e%2f%2e%2e%2fetc", "decoded"),
    ("%2fetc%2fpasswd", "decoded"),
    ("..%2fsecret", "decoded"),
    ("%252e%252e/x", "decoded"),  # double encoding
    ("%7e/x", "decoded"),
    ("a%00b", "decoded"),
    ("%c0%ae%c0%ae/x", "decoded"),  # overlong UTF-8 dots
    ("\uff0e\uff0e\uff0fsecret", "decoded"),  # fullwidth ．．／
    ("\uff0e\uff0e/x", "decoded"),
    ("\u2024\u2024/x", "decoded"),  # one-dot leaders normalise to '.'
    ("\uff5e/x", "decoded"),  # fullwidth tilde
    ("x" * 5000, "too long"),
]


@pytest.mark.parametrize(("bad", "why"), BAD_PATHS)
def test_bad_paths_are_refused_with_a_clear_message(workspace: Path, bad: str, why: str) -> None:
    (workspace / "a" / "b").mkdir(parents=True)
    with pytest.raises(ToolError) as info:
        resolve_path(workspace, bad)
    message = str(info.value)
    assert message and len(message) < 600
    keywords = {
        "outside": "outside", "absolute": "absolute", "Windows": "Windows", "home": "home",
        "NUL": "NUL", "control": "control", "invisible": "invisible", "decoded": "decoded",
        "too long": "too long",
    }
    assert keywords[why] in message


@pytest.mark.parametrize("bad", [123, 1.5, ["a"], {"p": 1}, b"bytes", True])
def test_non_string_paths_are_refused(workspace: Path, bad: object) -> None:
    with pytest.raises(ToolError, match="must be a string"):
        resolve_path(workspace, bad)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "."), ("", "."), (".", "."), ("./", "."), ("src", "src"), ("src/", "src"),
        ("src/main.py", "src/main.py"), ("src\\main.py", "src/main.py"), ("src/../README.md", "README.md"),
        ("a b.txt", "a b.txt"), ("a%20b.txt", "a%20b.txt"), ("100%.txt", "100%.txt"),
        ("caf\u00e9.txt", "caf\u00e9.txt"), ("\uff46ile.txt", "\uff46ile.txt"), ("..hidden", "..hidden"),
        ("...", "..."), ("a..b", "a..b"), ("dir/~file", "dir/~file"),
    ],
)
def test_good_paths_resolve_inside(workspace: Path, given: str | None, expected: str) -> None:
    path = resolve_path(workspace, given)
    assert relative_to_root(workspace, path) == expected
    assert path == Path(os.path.realpath(workspace / expected))


def test_check_path_text_normalises_backslashes() -> None:
    assert check_path_text("a\\b\\c.txt") == "a/b/c.txt"


def test_symlinks_pointing_out_are_refused(workspace: Path, outside: Path) -> None:
    (workspace / "escape").symlink_to(outside)
    (workspace / "secret_link").symlink_to(outside / "secret.txt")
    (workspace / "rel_link").symlink_to("../outside")
    (workspace / "d").mkdir()
    (workspace / "d" / "chain").symlink_to("../rel_link")  # link to a link that points out
    (workspace / "dangling").symlink_to(outside / "does-not-exist-yet")
    for bad in ["escape", "escape/secret.txt", "escape/new.txt", "secret_link", "rel_link/sub/data.py",
                "d/chain/secret.txt", "dangling", "escape/../escape/secret.txt"]:
        with pytest.raises(ToolError, match="outside"):
            resolve_path(workspace, bad)


def test_symlinks_inside_are_followed(workspace: Path) -> None:
    (workspace / "real").mkdir()
    (workspace / "real" / "f.txt").write_text("x")
    (workspace / "alias").symlink_to("real")
    assert resolve_path(workspace, "alias/f.txt") == Path(os.path.realpath(workspace / "real" / "f.txt"))


def test_symlink_loop_does_not_hang_or_escape(workspace: Path) -> None:
    (workspace / "loop1").symlink_to("loop2")
    (workspace / "loop2").symlink_to("loop1")
    path = resolve_path(workspace, "loop1/x")
    assert str(path).startswith(os.path.realpath(workspace))


def test_root_given_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real_ws"
    real.mkdir()
    (tmp_path / "ws_link").symlink_to(real)
    assert resolve_path(tmp_path / "ws_link", "a.txt") == Path(os.path.realpath(real)) / "a.txt"
    with pytest.raises(ToolError):
        resolve_path(tmp_path / "ws_link", "../x")


def test_missing_root_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="not a directory"):
        resolve_path(tmp_path / "nope", "a.txt")


def test_must_exist(workspace: Path) -> None:
    with pytest.raises(ToolError, match="does not exist"):
        resolve_path(workspace, "missing.txt", must_exist=True)


def test_writable_path_refuses_root_and_git(workspace: Path) -> None:
    (workspace / ".git" / "hooks").mkdir(parents=True)
    (workspace / "hooks_link").symlink_to(".git/hooks")
    for bad in [".", "", "a/..", ".git", ".git/config", ".git/hooks/pre-commit", "hooks_link/post-checkout",
                "sub/.git/hooks/pre-commit", "vendor/lib/.git/config"]:
        with pytest.raises(ToolError):
            resolve_writable_path(workspace, bad)
    assert resolve_writable_path(workspace, "src/.gitignore").name == ".gitignore"
    assert resolve_writable_path(workspace, "x.git/config").name == "config"


def test_entry_path_does_not_follow_the_final_symlink(workspace: Path, outside: Path) -> None:
    (workspace / "secret_link").symlink_to(outside / "secret.txt")
    path = resolve_entry_path(workspace, "secret_link")
    assert path == Path(os.path.realpath(workspace)) / "secret_link"
    assert path.is_symlink()
    with pytest.raises(ToolError):
        resolve_entry_path(workspace, "../outside/secret.txt")
    (workspace / "escape").symlink_to(outside)
    with pytest.raises(ToolError, match="outside"):
        resolve_entry_path(workspace, "escape/secret.txt")
    with pytest.raises(ToolError):
        resolve_entry_path(workspace, ".git/config")


def test_atomic_write_creates_parents_keeps_mode_and_leaves_no_temp(workspace: Path) -> None:
    target = resolve_path(workspace, "a/b/c.txt")
    created = atomic_write_bytes(workspace, target, b"one")
    assert [relative_to_root(workspace, p) for p in created] == ["a", "a/b"]
    assert target.read_bytes() == b"one"
    os.chmod(target, 0o751)
    assert atomic_write_bytes(workspace, target, b"two") == []
    assert target.read_bytes() == b"two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o751
    assert sorted(p.name for p in target.parent.iterdir()) == ["c.txt"]


def test_atomic_write_refuses_a_folder_swapped_for_an_outside_symlink(workspace: Path, outside: Path) -> None:
    """The check-then-write race: the folder becomes a symlink after resolve_path approved it."""
    (workspace / "d").mkdir()
    target = resolve_path(workspace, "d/new.txt")
    before = snapshot(outside)
    os.rmdir(workspace / "d")
    (workspace / "d").symlink_to(outside)
    with pytest.raises(ToolError):
        atomic_write_bytes(workspace, target, b"pwned")
    assert snapshot(outside) == before


def test_atomic_write_refuses_folder_target_and_outside_target(workspace: Path, outside: Path) -> None:
    (workspace / "d").mkdir()
    with pytest.raises(ToolError, match="folder"):
        atomic_write_bytes(workspace, Path(os.path.realpath(workspace)) / "d", b"x")
    with pytest.raises(ToolError):
        atomic_write_bytes(workspace, outside / "secret.txt", b"x")


def test_remove_path_never_follows_links(workspace: Path, outside: Path) -> None:
    before = snapshot(outside)
    (workspace / "d").mkdir()
    (workspace / "d" / "escape").symlink_to(outside)
    (workspace / "d" / "f").write_text("x")
    remove_path(workspace, Path(os.path.realpath(workspace)) / "d")
    assert not (workspace / "d").exists()
    assert snapshot(outside) == before
    with pytest.raises(ToolError):
        remove_path(workspace, Path(os.path.realpath(workspace)))
    with pytest.raises(ToolError):
        remove_path(workspace, outside / "secret.txt")
    assert snapshot(outside) == before
