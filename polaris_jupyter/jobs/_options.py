"""Parsing and validating trigger input that arrives as JSON (REST, kernels, notebooks)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

from polaris_jupyter.jobs._models import InvalidInput, TriggerOptions, iso

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "MAX_TAGS",
    "check_json_size",
    "options_from_json",
    "options_to_json",
    "parse_duration_s",
]

#: Trigger.dev's payload limit; larger inputs belong in files, not in a run row.
MAX_PAYLOAD_BYTES = 3 * 1024 * 1024
MAX_TAGS = 10
MAX_TAG_CHARS = 128
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_KNOWN_OPTIONS = {
    "delay",
    "ttl",
    "idempotencyKey",
    "idempotencyKeyTTL",
    "idempotencyKeyScope",
    "tags",
    "metadata",
    "concurrencyKey",
    "queue",
    "maxAttempts",
    "maxDuration",
}


def parse_duration_s(value: Any, name: str) -> float:
    """``10`` / ``"10s"`` / ``"1.5m"`` / ``"2h"`` / ``"1d"`` → seconds (numbers are seconds)."""
    if isinstance(value, bool):
        raise InvalidInput(f"{name} must be a duration such as 30, '30s', '5m' or '2h'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    else:
        raise InvalidInput(f"{name} must be a duration such as 30, '30s', '5m' or '2h', got {value!r}")
    if seconds < 0 or seconds != seconds or seconds > 10 * 365 * 86400:
        raise InvalidInput(f"{name} must be between 0 and 10 years, got {value!r}")
    return seconds


def _parse_delay(value: Any, now: float) -> tuple[float | None, float | None]:
    """A delay is a duration or an ISO-8601 date; returns (delay_s, delay_until)."""
    if isinstance(value, str) and ("T" in value or value.count("-") >= 2):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidInput(f"delay {value!r} is neither a duration nor an ISO-8601 date") from exc
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return None, when.timestamp()
    return parse_duration_s(value, "delay"), None


_SMALL_SCALARS = (type(None), bool, int, float)


def check_json_size(value: Any, name: str, limit_bytes: int = MAX_PAYLOAD_BYTES) -> None:
    """Refuse values that are not JSON or larger than ``limit_bytes`` once encoded."""
    if isinstance(value, _SMALL_SCALARS) or (isinstance(value, str) and len(value) * 4 < limit_bytes):
        return
    try:
        size = len(json.dumps(value, separators=(",", ":")).encode())
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be JSON-serializable: {exc}") from exc
    if size > limit_bytes:
        raise InvalidInput(f"{name} is {size} bytes; the limit is {limit_bytes} bytes")


def validate_tags(tags: Any) -> list[str]:
    if not tags:
        if tags is None or tags == []:
            return []
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise InvalidInput("tags must be a list of non-empty strings")
    if len(tags) > MAX_TAGS:
        raise InvalidInput(f"at most {MAX_TAGS} tags per run, got {len(tags)}")
    for t in tags:
        if len(t) > MAX_TAG_CHARS:
            raise InvalidInput(f"tag {t[:20]!r}… is longer than {MAX_TAG_CHARS} characters")
    return list(dict.fromkeys(tags))


def options_from_json(data: Any, now: float) -> TriggerOptions:
    """Build :class:`TriggerOptions` from Trigger.dev's JSON ``options`` object."""
    if data is None:
        return TriggerOptions()
    if not isinstance(data, dict):
        raise InvalidInput("options must be a JSON object")
    unknown = set(data) - _KNOWN_OPTIONS
    if unknown:
        raise InvalidInput(f"unknown option(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(_KNOWN_OPTIONS))}")
    opts = TriggerOptions()
    if data.get("delay") is not None:
        opts.delay_s, opts.delay_until = _parse_delay(data["delay"], now)
    if data.get("ttl") is not None:
        opts.ttl_s = parse_duration_s(data["ttl"], "ttl")
        if opts.ttl_s <= 0:
            raise InvalidInput("ttl must be greater than 0")
    for key, attr in (("idempotencyKey", "idempotency_key"), ("concurrencyKey", "concurrency_key"), ("queue", "queue")):
        value = data.get(key)
        if value is not None:
            if not isinstance(value, str) or not value or len(value) > 256:
                raise InvalidInput(f"{key} must be a non-empty string of at most 256 characters")
            setattr(opts, attr, value)
    if data.get("idempotencyKeyTTL") is not None:
        opts.idempotency_key_ttl_s = parse_duration_s(data["idempotencyKeyTTL"], "idempotencyKeyTTL")
    scope = data.get("idempotencyKeyScope", "global")
    if scope not in ("global", "run", "attempt"):
        raise InvalidInput("idempotencyKeyScope must be 'global', 'run' or 'attempt'")
    opts.idempotency_scope = scope
    opts.tags = validate_tags(data.get("tags"))
    metadata = data.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise InvalidInput("metadata must be a JSON object")
        check_json_size(metadata, "metadata", 64 * 1024)
        opts.metadata = metadata
    if data.get("maxAttempts") is not None:
        value = data["maxAttempts"]
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100:
            raise InvalidInput("maxAttempts must be an integer from 1 to 100")
        opts.max_attempts = value
    if data.get("maxDuration") is not None:
        opts.max_duration_s = parse_duration_s(data["maxDuration"], "maxDuration")
        if opts.max_duration_s <= 0:
            raise InvalidInput("maxDuration must be greater than 0")
    return opts


def options_to_json(opts: TriggerOptions) -> dict[str, Any]:
    """The JSON ``options`` object that :func:`options_from_json` reads back as ``opts``
    (used where options cross a process boundary: a task running in a kernel)."""
    out: dict[str, Any] = {}
    if opts.delay_until is not None:
        out["delay"] = iso(opts.delay_until)
    elif opts.delay_s is not None:
        out["delay"] = opts.delay_s
    pairs = (
        ("ttl", opts.ttl_s),
        ("idempotencyKey", opts.idempotency_key),
        ("idempotencyKeyTTL", opts.idempotency_key_ttl_s),
        ("concurrencyKey", opts.concurrency_key),
        ("queue", opts.queue),
        ("maxAttempts", opts.max_attempts),
        ("maxDuration", opts.max_duration_s),
    )
    out.update({key: value for key, value in pairs if value is not None})
    if opts.idempotency_scope != "global":
        out["idempotencyKeyScope"] = opts.idempotency_scope
    if opts.tags:
        out["tags"] = list(opts.tags)
    if opts.metadata:
        out["metadata"] = dict(opts.metadata)
    return out
