"""Settings: every knob of airlock, read once from the environment and ``.env``.

The entry point builds one :class:`Settings` and passes typed slices down;
nothing else reads ``os.environ``. Slack and Anthropic settings keep the
names their own SDKs and docs use; everything else is ``AIRLOCK_*``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import unquote, urlsplit

from dotenv.parser import parse_stream
from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from agent_core.audit.chain import MIN_KEY_CHARS, AuditKey
from agent_core.errors import ConfigError
from agent_core.logs import redact, register_secrets
from agent_core.models import RiskLevel, TimeoutPolicy

__all__ = ["DEFAULT_PRICES", "ModelPrice", "Settings", "load_settings"]

_SLACK_ID = r"^[UWS][A-Z0-9]{2,}$"
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_PATTERN = rf"^(?:\*\.)?{_LABEL}(?:\.{_LABEL})*$|^\[?[0-9a-f:.]+\]?$"
"""An exact host (a name or an address) or ``*.`` and a suffix of labels."""
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_OWN_PREFIXES = ("AIRLOCK_", "SLACK_", "ANTHROPIC_", "OTEL_", "REDIS_")
"""Airlock's own settings: never handed to a command, whatever the allow-list says."""

IdList = Annotated[list[str], NoDecode]
"""Comma-separated in the environment: ``U012AB3CD,S0614TZR7``."""

_JSON_SETTINGS = ("prices", "tool_risks")
"""Settings written as JSON; parsed here so that a typo is a problem naming the setting."""


class ModelPrice(BaseModel):
    """US dollars per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)


DEFAULT_PRICES: dict[str, ModelPrice] = {
    **dict.fromkeys(
        ("claude-opus-4-5", "claude-opus-4-6", "claude-opus-4-7"),
        ModelPrice(input=5.0, output=25.0),
    ),
    **dict.fromkeys(("claude-sonnet-4-5", "claude-sonnet-4-6"), ModelPrice(input=3.0, output=15.0)),
    "claude-haiku-4-5": ModelPrice(input=1.0, output=5.0),
}
"""List prices of the default models (input, output); cache pricing derives from input."""


def _alias(name: str) -> Any:
    return Field(validation_alias=AliasChoices(name))


class Settings(BaseSettings):
    """All of airlock's configuration. See ``.env.example`` for each setting."""

    model_config = SettingsConfigDict(
        env_prefix="AIRLOCK_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        # "SLACK_APP_TOKEN=" in .env means unset, not an empty token.
        env_ignore_empty=True,
    )

    _settings_file: Path | None = PrivateAttr(default=None)

    # Slack
    slack_bot_token: SecretStr | None = Field(default=None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(
        default=None, validation_alias="SLACK_SIGNING_SECRET"
    )
    slack_app_token: SecretStr | None = Field(default=None, validation_alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field(
        default="https://slack.com/api/", validation_alias="SLACK_API_URL", pattern=r"^https?://"
    )

    # Anthropic
    anthropic_api_key: SecretStr | None = Field(default=None, validation_alias="ANTHROPIC_API_KEY")
    anthropic_base_url: str | None = Field(
        default=None, validation_alias="ANTHROPIC_BASE_URL", pattern=r"^https?://"
    )
    # Not the 4.5 models DESIGN.md names: the SDK marks claude-sonnet-4-5 (end of life
    # 2026-11-30) and claude-opus-4-5 (2027-01-22) deprecated. Same prices, same tiers.
    planner_model: str = Field(default="claude-opus-4-7", min_length=1)
    executor_model: str = Field(default="claude-sonnet-4-6", min_length=1)
    fast_model: str = Field(default="claude-haiku-4-5", min_length=1)
    fallback_model: str | None = None
    llm_timeout_seconds: float = Field(default=120.0, gt=0)
    llm_max_retries: int = Field(default=4, ge=0, le=10)
    llm_max_tokens: int = Field(default=4096, ge=256)
    prices: Annotated[dict[str, ModelPrice], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_PRICES)
    )
    cache_write_multiplier: float = Field(default=1.25, ge=0)
    cache_read_multiplier: float = Field(default=0.1, ge=0)

    # State
    data_dir: Path = Path("./data")
    store_url: str | None = Field(default=None, pattern=r"^(sqlite|redis|rediss)://")
    redis_max_connections: int = Field(default=64, ge=2)
    signal_poll_seconds: float = Field(default=0.1, gt=0, le=1.0)

    # People
    approvers: IdList = Field(default_factory=list)
    admins: IdList = Field(default_factory=list)
    allow_self_approval: bool = False
    approvers_answer_questions: bool = False
    approval_quorum: int = Field(default=2, ge=1)
    approval_ttl_seconds: float = Field(default=3600.0, gt=0)
    approval_timeout_high: TimeoutPolicy = TimeoutPolicy.REJECT
    approval_timeout_critical: TimeoutPolicy = TimeoutPolicy.HALT
    escalation_chain: IdList = Field(default_factory=list)
    group_cache_seconds: float = Field(default=300.0, ge=0)
    operator_id: str | None = None
    approval_channel: str | None = Field(default=None, pattern=r"^[CG][A-Z0-9]+$")
    approval_dms: bool = True
    tool_risks: Annotated[dict[str, RiskLevel], NoDecode] = Field(default_factory=dict)

    # Budgets and timeouts
    max_llm_calls_per_run: int = Field(default=50, ge=1)
    max_iterations_per_subtask: int = Field(default=10, ge=1)
    max_plan_retries: int = Field(default=2, ge=0)
    run_budget_usd: float = Field(default=5.0, gt=0)
    run_token_budget: int = Field(default=2_000_000, gt=0)
    run_timeout_seconds: float = Field(default=1800.0, gt=0)
    budget_warning_fraction: float = Field(default=0.5, gt=0, lt=1)
    tool_timeout_seconds: float = Field(default=60.0, gt=0)
    tool_output_max_chars: int = Field(default=20_000, ge=1000)
    loop_repeat_limit: int = Field(default=3, ge=2)
    max_concurrent_subtasks: int = Field(default=4, ge=1)

    # Limits (0 turns a limit off)
    daily_budget_usd: float = Field(default=100.0, ge=0)
    user_daily_budget_usd: float = Field(default=25.0, ge=0)
    runs_per_user_per_hour: int = Field(default=20, ge=0)
    max_concurrent_runs: int = Field(default=8, ge=0)

    # Tools
    workspace_dir: Path | None = None
    http_allow_hosts: IdList = Field(default_factory=list)
    egress_allowed_hosts: IdList = Field(default_factory=list)
    mcp_config: Path | None = None
    command_sandbox: Literal["required", "off"] = "required"
    command_sandbox_python: Path | None = None
    command_env_allow: IdList = Field(default_factory=list)
    slack_timeout_seconds: float = Field(default=30.0, gt=0)

    # Working memory
    working_memory_tokens: int = Field(default=60_000, ge=8_000)
    token_counting: Literal["estimate", "api"] = "estimate"

    # Telemetry
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT", pattern=r"^https?://"
    )
    otel_service_name: str = Field(
        default="airlock", validation_alias="OTEL_SERVICE_NAME", min_length=1
    )

    # Serving
    shutdown_grace_seconds: float = Field(default=20.0, ge=0, le=600)
    lease_seconds: float = Field(default=30.0, ge=0.5, le=600)
    port: int = Field(default=3000, ge=1, le=65535)
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")

    # Audit
    audit_key: SecretStr | None = None
    audit_retention_days: float = Field(default=365.0, ge=0)

    # Memory: session facts and long-term memory
    memory_enabled: bool = True
    memory_extract: bool = True
    fact_ttl_seconds: float = Field(default=86400.0, gt=0)
    memory_max_recalled: int = Field(default=5, ge=0, le=50)
    memory_precedents: int = Field(default=3, ge=0, le=10)
    memory_min_similarity: float = Field(default=0.3, ge=-1, le=1)
    memory_weight_similarity: float = Field(default=0.7, ge=0)
    memory_weight_importance: float = Field(default=0.15, ge=0)
    memory_weight_recency: float = Field(default=0.15, ge=0)
    memory_recency_half_life_days: float = Field(default=30.0, gt=0)
    memory_dedup_threshold: float = Field(default=0.95, gt=0, le=1)
    memory_ann_threshold: int = Field(default=20_000, ge=100)
    memory_embed_threads: int = Field(default=0, ge=0, le=256)
    memory_episodic_ttl_days: float = Field(default=90.0, ge=0)

    @field_validator(*_JSON_SETTINGS, mode="before")
    @classmethod
    def _parse_json(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"not valid JSON ({error.msg} at character {error.pos})") from None

    @field_validator("escalation_chain")
    @classmethod
    def _check_chain(cls, hops: list[str]) -> list[str]:
        for hop in hops:
            who, _, seconds = hop.partition("=")
            if not re.match(_SLACK_ID, who) or not _positive_number(seconds):
                raise ValueError(f"{hop!r} is not ID=SECONDS (e.g. S0614TZR7=600)")
        return hops

    @field_validator("audit_key")
    @classmethod
    def _check_audit_key(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and len(key.get_secret_value().strip()) < MIN_KEY_CHARS:
            raise ValueError(
                f"must be at least {MIN_KEY_CHARS} characters (`airlock audit keygen` makes one)"
            )
        return key

    @property
    def escalation_hops(self) -> list[tuple[str, float]]:
        """The escalation chain as (user or group id, seconds that hop waits)."""
        return [(hop.split("=")[0], float(hop.split("=")[1])) for hop in self.escalation_chain]

    @field_validator(
        "approvers", "admins", "http_allow_hosts", "egress_allowed_hosts", "escalation_chain",
        "command_env_allow",
        mode="before",
    )  # fmt: skip
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("approvers", "admins")
    @classmethod
    def _check_ids(cls, ids: list[str]) -> list[str]:
        bad = [i for i in ids if not re.match(_SLACK_ID, i)]
        if bad:
            raise ValueError(f"not Slack user or user-group ids: {', '.join(bad)}")
        return ids

    @field_validator("egress_allowed_hosts")
    @classmethod
    def _check_hosts(cls, hosts: list[str]) -> list[str]:
        bad = [h for h in hosts if not re.match(_HOST_PATTERN, h.strip().lower().rstrip("."))]
        if bad:
            raise ValueError(
                f"not host names or *.suffix patterns: {', '.join(bad)}"
                " (a bare * would let any host receive private data)"
            )
        return hosts

    @field_validator("command_env_allow")
    @classmethod
    def _check_env_names(cls, names: list[str]) -> list[str]:
        bad = [n for n in names if not re.match(_ENV_NAME, n)]
        if bad:
            raise ValueError(f"not environment variable names: {', '.join(bad)}")
        own = [n for n in names if n.upper().startswith(_OWN_PREFIXES)]
        if own:
            raise ValueError(f"airlock's own settings never reach a command: {', '.join(own)}")
        return names

    @property
    def settings_file(self) -> Path | None:
        """The settings file these settings were read from (None: no file was named)."""
        return self._settings_file

    @property
    def effective_store_url(self) -> str:
        """The store URL, defaulting to a SQLite file in the data folder."""
        return self.store_url or f"sqlite:///{(self.data_dir / 'airlock.db').as_posix()}"

    @property
    def effective_workspace_dir(self) -> Path:
        """The folder file and command tools work in."""
        return self.workspace_dir or self.data_dir / "workspace"

    @property
    def audit_chain_key(self) -> AuditKey | None:
        """The key that seals the audit trail, or None when ``AIRLOCK_AUDIT_KEY`` is unset."""
        if self.audit_key is None:
            return None
        return AuditKey.from_text(self.audit_key.get_secret_value())

    @property
    def socket_mode(self) -> bool:
        """Socket Mode when an app-level token is set, HTTP otherwise."""
        return self.slack_app_token is not None

    def secrets(self) -> list[SecretStr]:
        """The tokens and keys that are set, to be masked wherever text leaves the process:
        every ``SecretStr`` setting, and the password of any URL setting (the Redis store's)."""
        values = [getattr(self, name) for name in type(self).model_fields]
        found = [value for value in values if isinstance(value, SecretStr)]
        for value in values:
            password = _url_password(value) if isinstance(value, str) else None
            if password:
                found.append(SecretStr(password))
        return found

    def missing_for_worker(self) -> list[str]:
        """The settings ``airlock worker`` needs and does not have (no Slack requests come in)."""
        required = {
            "SLACK_BOT_TOKEN": self.slack_bot_token,
            "ANTHROPIC_API_KEY": self.anthropic_api_key,
            "AIRLOCK_AUDIT_KEY": self.audit_key,
        }
        return [name for name, value in required.items() if not _present(value)]

    def missing_for_serve(self) -> list[str]:
        """The settings ``airlock serve`` needs and does not have."""
        required = {
            "SLACK_BOT_TOKEN": self.slack_bot_token,
            "ANTHROPIC_API_KEY": self.anthropic_api_key,
        }
        if not self.socket_mode:
            required["SLACK_SIGNING_SECRET"] = self.slack_signing_secret
        required["AIRLOCK_AUDIT_KEY"] = self.audit_key
        return [name for name, value in required.items() if not _present(value)]


def _positive_number(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


def _url_password(value: str) -> str | None:
    """The password in ``scheme://user:password@host``, decoded; None when there is none."""
    if "://" not in value or "@" not in value:
        return None
    try:
        password = urlsplit(value).password
    except ValueError:
        return None
    return unquote(password) if password else None


def _present(value: SecretStr | None) -> bool:
    return value is not None and bool(value.get_secret_value().strip())


def _is_secret(field: str) -> bool:
    info = Settings.model_fields.get(field)
    return info is not None and SecretStr in (get_args(info.annotation) or (info.annotation,))


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    info = Settings.model_fields[field]
    alias = info.validation_alias
    if isinstance(alias, str):
        return alias
    return f"AIRLOCK_{field.upper()}"


def load_settings(env_file: Path | str | None = ".env", **overrides: Any) -> Settings:
    """Build :class:`Settings`, or raise :class:`ConfigError` with one line per problem."""
    try:
        _check_env_file(env_file)
        settings = Settings(_env_file=env_file, **overrides)
    except ValidationError as error:
        raise ConfigError([_describe(problem) for problem in error.errors()]) from None
    except SettingsError as error:  # a value pydantic-settings could not decode at all
        raise ConfigError([_undecodable(error)]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([f"--env-file {env_file}: cannot be read ({error})"]) from None
    settings._settings_file = None if env_file is None else Path(env_file)
    _anchor_data_dir(settings)
    # Masked wherever they might appear: logs, the audit trail, Slack messages, spans.
    register_secrets(*(secret.get_secret_value() for secret in settings.secrets()))
    return settings


def _anchor_data_dir(settings: Settings) -> None:
    """A relative ``AIRLOCK_DATA_DIR`` is taken from the folder of the settings file that was
    read, not from wherever the command runs: ``--env-file ops/.env`` keeps its store in
    ``ops/data`` whichever folder it is run from."""
    env_file = settings.settings_file
    if env_file is not None and env_file.is_file() and not settings.data_dir.is_absolute():
        settings.data_dir = env_file.parent / settings.data_dir


def _check_env_file(env_file: Path | str | None) -> None:
    """ConfigError naming each line of ``env_file`` that python-dotenv would skip unread."""
    if env_file is None or not Path(env_file).is_file():
        return
    with Path(env_file).open(encoding="utf-8") as stream:
        bad = [binding.original.line for binding in parse_stream(stream) if binding.error]
    if bad:
        lines = ", ".join(str(line) for line in bad)
        raise ConfigError([f"--env-file {env_file}: cannot parse line {lines} (NAME=value)"])


def _undecodable(error: SettingsError) -> str:
    """``error parsing value for field "x" from source ...`` as a line naming the variable."""
    found = re.search(r'field "(\w+)"', str(error))
    field = found.group(1) if found else ""
    name = env_name(field) if field in Settings.model_fields else "a setting"
    return f"{name}: cannot be decoded ({error.__cause__ or error})"


def _describe(problem: Any) -> str:
    field = str(problem["loc"][0]) if problem["loc"] else "?"
    name = env_name(field) if field in Settings.model_fields else field
    value = problem.get("input")
    hidden = (
        isinstance(value, dict)
        or re.search(r"(?i)secret|token|key|password", name)
        or _is_secret(field)
    )
    # Not registered yet (the settings did not load): a URL's password is masked by pattern.
    shown = "" if hidden else f" (got {redact(repr(value))})"
    if len(shown) > 100:  # a JSON setting can be long; the start says enough
        shown = shown[:96] + "…)"
    where = "".join(f"{part}: " for part in problem["loc"][1:])
    message = str(problem["msg"]).removeprefix("Value error, ")
    return f"{name}: {where}{message}{shown}"
