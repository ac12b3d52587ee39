"""Provider keys and base URLs entered in the UI, kept on the server only.

Where they live (``PolarisConfig.key_storage``):

- ``file`` (default): ``PolarisConfig.keys_path`` (``<jupyter data dir>/polaris/keys.json``),
  readable by the server's user alone. Every write goes to a new file created with mode 0600
  before its first byte, then atomically replaces the old one; a file found readable by others
  is narrowed back to 0600 (with a warning).
- ``keyring``: the API key in the system keyring (the optional ``keyring`` package, service
  ``polaris-jupyter``, one entry per provider), the base URL and the time it was set in the
  file. ``auto`` uses the keyring when a usable backend exists, else the file.

Rules the rest of Polaris relies on: an environment variable always wins over a stored value
(``OPENAI_API_KEY`` set → the stored OpenAI key is not used, and :meth:`KeyStore.view` says
so); nothing here ever returns a key (:meth:`KeyStore.view` has "set" / "not set" and the last
4 characters of long keys); every stored key is masked in log records of this process
(:mod:`polaris_jupyter.agent.log_scrub`). :attr:`KeyStore.version` changes with every change, so the model
service rebuilds its provider chains and the next request uses the new key, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from polaris_jupyter.agent.log_scrub import install_log_scrubber, register_source, secrets_changed
from polaris_jupyter.errors import InvalidInput, NotFound

__all__ = ["KEYRING_SERVICE", "KEY_PROVIDERS", "UNSET", "KeyStore", "check_api_key", "check_base_url", "usable_keyring"]

log = logging.getLogger("polaris_jupyter.agent")

#: Providers that take a key and a base URL, with the environment variables that win over them.
KEY_PROVIDERS: dict[str, tuple[str, str]] = {
    "cerebras": ("CEREBRAS_API_KEY", "CEREBRAS_BASE_URL"),
    "openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL"),
    "openrouter": ("OPENROUTER_API_KEY", "OPENROUTER_BASE_URL"),
    "local": ("POLARIS_LOCAL_API_KEY", "POLARIS_LOCAL_BASE_URL"),
}
KEYRING_SERVICE = "polaris-jupyter"
MAX_KEY_CHARS = 4096
MAX_URL_CHARS = 2048
#: Keys shorter than this show no last characters (4 of 8 would give half the key away).
MIN_CHARS_FOR_LAST4 = 12
_FILE_VERSION = 1


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: "Leave this field as it is" for :meth:`KeyStore.put` (None clears the field).
UNSET: Any = _Unset()


@dataclass(frozen=True)
class _Entry:
    api_key: str | None
    base_url: str | None
    updated_at: float


# -- validation -----------------------------------------------------------------------------------

def _check_provider(provider: str) -> str:
    name = provider.strip().lower()
    if name not in KEY_PROVIDERS:
        raise NotFound(f"{provider!r} takes no key here; providers with keys: {', '.join(KEY_PROVIDERS)}")
    return name


def check_api_key(value: Any) -> str:
    """A pasted key without surrounding whitespace; refused when it cannot be a key."""
    if not isinstance(value, str):
        raise InvalidInput("apiKey must be a string (or null to remove the stored key)")
    key = value.strip()
    if not key:
        raise InvalidInput("apiKey is empty; paste the key, or send null to remove the stored key")
    if len(key) > MAX_KEY_CHARS:
        raise InvalidInput(f"apiKey is {len(key)} characters; the limit is {MAX_KEY_CHARS}")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise InvalidInput("apiKey contains spaces or control characters; paste only the key")
    return key


def check_base_url(value: Any) -> str:
    """An http(s) URL with a host and no credentials in it (those belong in apiKey)."""
    if not isinstance(value, str):
        raise InvalidInput("baseUrl must be a string (or null to use the provider's default)")
    url = value.strip().rstrip("/")
    if not url:
        raise InvalidInput("baseUrl is empty; send null to use the provider's default")
    if len(url) > MAX_URL_CHARS:
        raise InvalidInput(f"baseUrl is {len(url)} characters; the limit is {MAX_URL_CHARS}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError as exc:
        raise InvalidInput(f"baseUrl {url!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"baseUrl must start with http:// or https:// and name a host, e.g. "
                           f"https://api.openai.com/v1 (got {url!r})")
    if parts.username or parts.password:
        raise InvalidInput("baseUrl must not contain a user name or password; put the key in apiKey")
    return url


def _last4(key: str) -> str | None:
    return key[-4:] if len(key) >= MIN_CHARS_FOR_LAST4 else None


# -- the file --------------------------------------------------------------------------------------

def _read_file(path: Path) -> tuple[dict[str, Any], tuple[int, int] | None]:
    """The file's JSON and its (mtime_ns, size), or ({}, None) when there is no file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return {}, None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if info.st_mode & 0o077:
            log.warning("polaris: %s was readable by other users (mode %o); narrowing it to 0600",
                        path, stat.S_IMODE(info.st_mode))
            os.fchmod(f.fileno(), 0o600)
        raw = f.read()
    try:
        data = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.error("polaris: %s is not valid JSON (%s); ignoring the keys in it", path, exc)
        data = {}
    return (data if isinstance(data, dict) else {}), (info.st_mtime_ns, info.st_size)


def _write_file(path: Path, data: dict[str, Any]) -> tuple[int, int]:
    """Write ``data`` as ``path`` atomically: a new file made 0600 before any content, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask can only narrow the mode; say it before the first byte anyway
        with os.fdopen(fd, "wb") as f:
            f.write(json.dumps(data, indent=2, sort_keys=True).encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # the rename itself is durable once the folder is synced
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    info = os.stat(path)
    return info.st_mtime_ns, info.st_size


def usable_keyring() -> Any | None:
    """The ``keyring`` module when it is installed and has a real backend, else None."""
    try:
        import keyring  # type: ignore[import-not-found]  # optional
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
        priority = float(getattr(backend, "priority", 0))
    except Exception:
        log.debug("keyring backend check failed", exc_info=True)
        return None
    module = type(backend).__module__
    if priority <= 0 or module.startswith(("keyring.backends.fail", "keyring.backends.null")):
        return None
    return keyring


class KeyStore:
    """Stored keys and base URLs (see the module docstring). All I/O runs in a thread."""

    def __init__(self, path: str | Path, *, storage: str = "file", keyring_module: Any | None = None) -> None:
        self.path = Path(path)
        self.note: str | None = None
        self._keyring = keyring_module
        if storage in ("keyring", "auto") and self._keyring is None:
            self._keyring = usable_keyring()
            if self._keyring is None and storage == "keyring":
                self.note = ("key_storage is 'keyring' but no usable keyring backend is installed "
                             "(pip install keyring); keys are kept in the file instead")
                log.warning("polaris: %s", self.note)
        self.storage = "keyring" if self._keyring is not None else "file"
        self._entries: dict[str, _Entry] = {}
        self._stamp: tuple[int, int] | None = None
        self._loaded = False
        self._lock = asyncio.Lock()
        #: Bumped by every change (a put, a delete, or the file changed by another process).
        self.version = 0
        register_source(self, lambda store: [e.api_key for e in store._entries.values() if e.api_key])
        install_log_scrubber()

    # -- reading ---------------------------------------------------------------------------------
    async def refresh(self) -> None:
        """Read the file again if it changed since it was read (another process may write it)."""
        async with self._lock:
            await asyncio.to_thread(self._refresh_blocking)

    def _refresh_blocking(self) -> None:
        try:
            info = os.stat(self.path)
            stamp: tuple[int, int] | None = (info.st_mtime_ns, info.st_size)
        except FileNotFoundError:
            stamp = None
        if self._loaded and stamp == self._stamp:
            return
        data, self._stamp = _read_file(self.path)
        entries: dict[str, _Entry] = {}
        for name, row in (data.get("providers") or {}).items():
            if name not in KEY_PROVIDERS or not isinstance(row, dict):
                continue
            key = row.get("apiKey")
            if row.get("apiKeyIn") == "keyring":
                key = self._keyring_get(name)
            entries[name] = _Entry(key if isinstance(key, str) and key else None,
                                   row.get("baseUrl") if isinstance(row.get("baseUrl"), str) else None,
                                   float(row.get("updatedAt") or 0))
        changed = entries != self._entries
        self._entries, self._loaded = entries, True
        if changed:
            self.version += 1
            secrets_changed()

    def _keyring_get(self, provider: str) -> str | None:
        if self._keyring is None:
            log.warning("polaris: the %s key is in the system keyring, which is not available here", provider)
            return None
        try:
            value = self._keyring.get_password(KEYRING_SERVICE, provider)
        except Exception as exc:
            log.warning("polaris: reading the %s key from the keyring failed: %s", provider, type(exc).__name__)
            return None
        return value if isinstance(value, str) and value else None

    # -- writing ---------------------------------------------------------------------------------
    async def put(self, provider: str, *, api_key: Any = UNSET, base_url: Any = UNSET) -> None:
        """Set (a string), clear (None) or keep (UNSET) the key and base URL of ``provider``."""
        name = _check_provider(provider)
        key = api_key if api_key is UNSET or api_key is None else check_api_key(api_key)
        url = base_url if base_url is UNSET or base_url is None else check_base_url(base_url)
        if key is UNSET and url is UNSET:
            raise InvalidInput("send apiKey and/or baseUrl (null removes a stored value)")
        async with self._lock:
            await asyncio.to_thread(self._put_blocking, name, key, url)

    async def delete(self, provider: str) -> bool:
        """Forget the stored key and base URL of ``provider``; False when nothing was stored."""
        name = _check_provider(provider)
        async with self._lock:
            return await asyncio.to_thread(self._delete_blocking, name)

    def _put_blocking(self, name: str, key: Any, url: Any) -> None:
        self._refresh_blocking()
        old = self._entries.get(name) or _Entry(None, None, 0.0)
        entry = _Entry(old.api_key if key is UNSET else key, old.base_url if url is UNSET else url, time.time())
        if self._keyring is not None and key is None and old.api_key:
            self._keyring_set(name, None)
        entries = dict(self._entries)
        if entry.api_key or entry.base_url:
            entries[name] = entry
        else:
            entries.pop(name, None)
        self._save(entries)

    def _delete_blocking(self, name: str) -> bool:
        self._refresh_blocking()
        if name not in self._entries:
            return False
        if self._keyring is not None and self._entries[name].api_key:
            self._keyring_set(name, None)
        entries = {k: v for k, v in self._entries.items() if k != name}
        self._save(entries)
        return True

    def _keyring_set(self, name: str, key: str | None) -> None:
        assert self._keyring is not None
        try:
            if key is None:
                with contextlib.suppress(Exception):  # PasswordDeleteError: nothing was there
                    self._keyring.delete_password(KEYRING_SERVICE, name)
            else:
                self._keyring.set_password(KEYRING_SERVICE, name, key)
        except Exception as exc:
            raise InvalidInput(f"the system keyring refused the {name} key ({type(exc).__name__}); "
                               "set key_storage = 'file' to keep keys in a 0600 file") from None

    def _save(self, entries: dict[str, _Entry]) -> None:
        rows: dict[str, Any] = {}
        for name, e in sorted(entries.items()):
            if self._keyring is not None and e.api_key:  # also moves a key the file held before
                self._keyring_set(name, e.api_key)
            row: dict[str, Any] = {"updatedAt": e.updated_at}
            if e.base_url:
                row["baseUrl"] = e.base_url
            if e.api_key:
                row.update({"apiKeyIn": "keyring"} if self._keyring is not None else {"apiKey": e.api_key})
            rows[name] = row
        self._stamp = _write_file(self.path, {"version": _FILE_VERSION, "providers": rows})
        self._entries, self._loaded = entries, True
        self.version += 1
        secrets_changed()

    # -- what the chain and the UI see -----------------------------------------------------------------
    def overrides(self, env: Mapping[str, str] | None = None) -> dict[str, dict[str, str]]:
        """``known_providers`` overrides from the stored values that no environment variable beats."""
        env = os.environ if env is None else env
        out: dict[str, dict[str, str]] = {}
        for name, entry in self._entries.items():
            key_env, url_env = KEY_PROVIDERS[name]
            fields: dict[str, str] = {}
            if entry.api_key and not env.get(key_env):
                fields["api_key"] = entry.api_key
            if entry.base_url and not env.get(url_env):
                fields["base_url"] = entry.base_url
            if fields:
                out[name] = fields
        return out

    def view(self, env: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Every provider that takes a key: whether a key is set and where from (never the key)."""
        from polaris_jupyter.agent.providers import known_providers

        env = os.environ if env is None else env
        defaults = {p.name: p.base_url for p in known_providers({})}
        rows = []
        for name, (key_env, url_env) in KEY_PROVIDERS.items():
            entry = self._entries.get(name)
            env_key, env_url = env.get(key_env) or None, env.get(url_env) or None
            stored_key = entry.api_key if entry else None
            key = env_key or stored_key
            url = env_url or (entry.base_url if entry else None)
            rows.append({
                "provider": name,
                "apiKey": {"set": bool(key), "last4": _last4(key) if key else None,
                           "source": "env" if env_key else "stored" if stored_key else None},
                "baseUrl": url or defaults.get(name),
                "baseUrlSource": "env" if env_url else "stored" if url else "default",
                "stored": {"apiKey": bool(stored_key), "last4": _last4(stored_key) if stored_key else None,
                           "baseUrl": entry.base_url if entry else None},
                "envKey": key_env,
                "envBaseUrl": url_env,
                "envWins": [n for n, v, s in ((key_env, env_key, stored_key), (url_env, env_url, entry and entry.base_url))
                            if v and s],
                "updatedAt": entry.updated_at if entry else None,
            })
        return {"providers": rows, "storage": self.storage, "note": self.note}
