"""The key store on its own: a 0600 file written atomically, never a key in what it shows,
environment variables winning, the keyring variant, changes by another process noticed, stored
keys masked in log records."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from polaris_jupyter.agent import keys
from polaris_jupyter.agent.keys import KEYRING_SERVICE, UNSET, KeyStore
from polaris_jupyter.errors import InvalidInput, NotFound

pytestmark = pytest.mark.asyncio

KEY = "sk-test-stored-0123456789abcdef"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_file_is_readable_by_its_owner_alone_and_written_atomically(tmp_path: Path) -> None:
    path = tmp_path / "data" / "polaris" / "keys.json"
    old_umask = os.umask(0)  # the widest umask: the mode must not depend on it
    try:
        store = KeyStore(path)
        await store.put("openai", api_key=KEY, base_url="https://llm.example.com/v1/")
    finally:
        os.umask(old_umask)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["keys.json"]  # no temporary file left behind
    saved = json.loads(path.read_text())
    assert saved["providers"]["openai"]["apiKey"] == KEY
    assert saved["providers"]["openai"]["baseUrl"] == "https://llm.example.com/v1"  # trailing slash dropped
    await store.put("openai", base_url=None)  # clears the URL, keeps the key
    assert "baseUrl" not in json.loads(path.read_text())["providers"]["openai"]
    assert mode(path) == 0o600


async def test_a_file_others_can_read_is_narrowed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"version": 1, "providers": {"openai": {"apiKey": KEY}}}))
    path.chmod(0o644)
    store = KeyStore(path)
    with caplog.at_level(logging.WARNING):
        await store.refresh()
    assert mode(path) == 0o600
    assert "narrowing it to 0600" in caplog.text
    assert store.overrides({}) == {"openai": {"api_key": KEY}}


async def test_the_view_never_holds_a_key_and_env_wins(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    await store.put("openai", api_key=KEY)
    await store.put("local", api_key="short-key")
    view = store.view({})
    assert KEY not in json.dumps(view) and "short-key" not in json.dumps(view)
    openai = next(p for p in view["providers"] if p["provider"] == "openai")
    assert openai["apiKey"] == {"set": True, "last4": "cdef", "source": "stored"}
    assert openai["baseUrlSource"] == "default" and openai["baseUrl"] == "https://api.openai.com/v1"
    local = next(p for p in view["providers"] if p["provider"] == "local")
    assert local["apiKey"] == {"set": True, "last4": None, "source": "stored"}  # 4 of 9 characters would say too much

    env = {"OPENAI_API_KEY": "sk-from-the-environment-9999", "OPENAI_BASE_URL": "http://10.0.0.1:8000/v1"}
    await store.put("openai", base_url="https://stored.example.com/v1")
    assert store.overrides(env) == {"local": {"api_key": "short-key"}}  # nothing stored beats the environment
    winning = next(p for p in store.view(env)["providers"] if p["provider"] == "openai")
    assert winning["apiKey"] == {"set": True, "last4": "9999", "source": "env"}
    assert winning["baseUrl"] == "http://10.0.0.1:8000/v1" and winning["baseUrlSource"] == "env"
    assert winning["envWins"] == ["OPENAI_API_KEY", "OPENAI_BASE_URL"]
    assert winning["stored"] == {"apiKey": True, "last4": "cdef", "baseUrl": "https://stored.example.com/v1"}
    assert store.overrides({})["openai"] == {"api_key": KEY, "base_url": "https://stored.example.com/v1"}


@pytest.mark.parametrize(
    ("provider", "fields", "error", "match"),
    [
        ("acme", {"api_key": KEY}, NotFound, "takes no key here"),
        ("bundled", {"api_key": KEY}, NotFound, "takes no key here"),
        ("openai", {}, InvalidInput, "apiKey and/or baseUrl"),
        ("openai", {"api_key": "  "}, InvalidInput, "apiKey is empty"),
        ("openai", {"api_key": "sk-one two"}, InvalidInput, "spaces or control characters"),
        ("openai", {"api_key": 5}, InvalidInput, "must be a string"),
        ("openai", {"base_url": "ftp://x/v1"}, InvalidInput, "http:// or https://"),
        ("openai", {"base_url": "https://user:pw@host/v1"}, InvalidInput, "user name or password"),
        ("openai", {"base_url": "http://host:99999/v1"}, InvalidInput, "not a URL"),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_written(
    tmp_path: Path, provider: str, fields: dict[str, Any], error: type[Exception], match: str
) -> None:
    store = KeyStore(tmp_path / "keys.json")
    with pytest.raises(error, match=match):
        await store.put(provider, **{"api_key": UNSET, "base_url": UNSET, **fields})
    assert not (tmp_path / "keys.json").exists()


async def test_a_pasted_key_loses_its_surrounding_whitespace(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    await store.put("cerebras", api_key=f"  {KEY}\n")
    assert store.overrides({}) == {"cerebras": {"api_key": KEY}}
    assert await store.delete("cerebras") is True
    assert await store.delete("cerebras") is False
    assert store.overrides({}) == {}


async def test_a_change_by_another_process_is_noticed(tmp_path: Path) -> None:
    mine, theirs = KeyStore(tmp_path / "keys.json"), KeyStore(tmp_path / "keys.json")
    await mine.refresh()
    before = mine.version
    await theirs.put("openrouter", api_key=KEY)
    await mine.refresh()
    assert mine.version > before and mine.overrides({}) == {"openrouter": {"api_key": KEY}}


class FakeKeyring:
    """The part of the ``keyring`` module the store uses."""

    def __init__(self) -> None:
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, name: str) -> str | None:
        return self.passwords.get((service, name))

    def set_password(self, service: str, name: str, value: str) -> None:
        self.passwords[(service, name)] = value

    def delete_password(self, service: str, name: str) -> None:
        del self.passwords[(service, name)]


async def test_with_a_keyring_the_file_holds_no_key(tmp_path: Path) -> None:
    ring = FakeKeyring()
    path = tmp_path / "keys.json"
    store = KeyStore(path, storage="keyring", keyring_module=ring)
    await store.put("openai", api_key=KEY, base_url="https://llm.example.com/v1")
    assert store.storage == "keyring" and KEY not in path.read_text()
    assert ring.passwords == {(KEYRING_SERVICE, "openai"): KEY}
    reader = KeyStore(path, storage="keyring", keyring_module=ring)
    await reader.refresh()
    assert reader.overrides({}) == {"openai": {"api_key": KEY, "base_url": "https://llm.example.com/v1"}}
    await reader.put("openai", api_key=None)
    assert ring.passwords == {}


async def test_keyring_asked_for_but_missing_falls_back_to_the_file_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keys, "usable_keyring", lambda: None)  # not installed, or no real backend
    store = KeyStore(tmp_path / "keys.json", storage="keyring")
    assert store.storage == "file" and store.note is not None and "pip install keyring" in store.note
    assert store.view({})["note"] == store.note
    assert KeyStore(tmp_path / "keys.json", storage="auto").note is None  # auto: the file, quietly


async def test_stored_keys_are_masked_in_every_log_record(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = KeyStore(tmp_path / "keys.json")
    await store.put("openai", api_key=KEY)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("httpx").debug("Authorization: Bearer %s", KEY)
        logging.getLogger("some.library").warning(f"failed with key={KEY}")
        try:
            raise RuntimeError(f"server said {KEY}")
        except RuntimeError:
            logging.getLogger("polaris_jupyter.agent").exception("call failed")
    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert KEY not in text
    assert text.count("[masked]") >= 3
