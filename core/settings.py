"""Every setting of threadbot, read once from the environment and `.env`."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _default_data_dir() -> Path:
    # XDG layout, so the index and the embedded server's data survive a reinstall.
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "threadbot"


DEFAULT_BASE = "default"
BASE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


_PERIOD = re.compile(r"(\d+(?:\.\d+)?)\s*([mhdw])")
_UNIT_S = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def period_s(value: str) -> float:
    """`30m`, `24h`, `7d`, `2w` in seconds: how a person writes a period, in a setting or an
    option (ValueError otherwise)."""
    found = _PERIOD.fullmatch(value.strip().lower())
    if found is None or float(found[1]) <= 0:
        raise ValueError(f"{value!r} is not a period: a number and m, h, d or w (30m, 6h, 7d)")
    return float(found[1]) * _UNIT_S[found[2]]


def _split_ids(value: object) -> object:
    """Accept `1,2 3` from the environment as well as a real list."""
    if isinstance(value, str):
        return [part for part in value.replace(",", " ").split() if part]
    return value


IdList = Annotated[list[int], NoDecode]
NameList = Annotated[list[str], NoDecode]
PatternList = Annotated[list[str], NoDecode]
ReplyMode = Literal["mention", "auto", "forum", "thread"]
ModeMap = Annotated[dict[str, ReplyMode], NoDecode]
# Where each platform can do each mode: forums and a thread per question are Discord's.
PLATFORM_MODES: dict[str, frozenset[str]] = {
    "slack": frozenset({"mention", "auto"}),
    "discord": frozenset({"mention", "auto", "forum", "thread"}),
}


def _split_modes(value: object) -> object:
    """`C0ASK:auto, 1234:thread` from the environment: channel ids, each with its reply mode."""
    if not isinstance(value, str):
        return value
    modes: dict[str, str] = {}
    for part in value.replace(",", " ").split():
        channel, sep, mode = part.partition(":")
        if not sep or not channel or not mode:
            raise ValueError(f"{part!r} is not CHANNEL_ID:MODE (e.g. C0123ASK:auto)")
        modes[channel] = mode.lower()
    return modes


def _split_patterns(value: object) -> object:
    """`*.log, drafts/` from the environment: comma-separated gitignore-style patterns."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """One frozen object built at startup; constructors receive it, nobody reads os.environ.

    Tests build `Settings(...)` directly, so every external service can be pointed at a local
    emulation through its URL.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        # `.env.example` lists `KEY=` lines: uncommented but still empty means "not set".
        env_ignore_empty=True,
    )

    # Storage
    threadbot_data_dir: Path = Field(default_factory=_default_data_dir)
    threadbot_config: Path | None = None  # threadbot.toml: knowledge bases per place
    redis_url: str | None = None
    history_key_prefix: str = "message_store:"
    redis_namespace: str = "threadbot:"
    history_max_messages: int = Field(default=40, ge=2)
    history_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=1)
    history_max_tokens: int = Field(default=2000, ge=100)
    lease_s: float = Field(default=15.0, gt=0)
    redis_max_connections: int = Field(default=64, ge=2)
    redis_pool_timeout_s: float = Field(default=20.0, gt=0)
    redis_timeout_s: float = Field(default=10.0, gt=0)
    index_poll_s: float = Field(default=10.0, gt=0)
    index_part_mb: float = Field(default=4.0, gt=0, le=512)

    # Retrieval
    knowledge_base: str | None = None  # a named base (`ingest --kb NAME`); None: the default
    embeddings: Literal["local", "openai"] | None = None
    embedding_model: str = "text-embedding-3-small"
    embedding_batch_size: int = Field(default=32, ge=1)
    chunk_size_chars: int = Field(default=1000, ge=200)
    chunk_overlap_chars: int = Field(default=150, ge=0)
    retrieval_k: int = Field(default=4, ge=1)
    retrieval_min_score: float = Field(default=0.2, ge=-1.0, le=1.0)
    retrieval_mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    embedding_threads: int = Field(default=0, ge=0)
    ingest_max_file_mb: float = Field(default=20.0, gt=0)
    ingest_ignore: PatternList = Field(default_factory=list)
    # Websites (`threadbot ingest https://...`): who the crawler says it is, how many requests
    # at once and per second (robots.txt's Crawl-delay slows it further), how many pages.
    crawl_user_agent: str = "threadbot"
    crawl_concurrency: int = Field(default=4, ge=1, le=64)
    crawl_rate: float = Field(default=4.0, gt=0)
    crawl_max_pages: int = Field(default=5000, ge=1)

    # Chat model
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    chat_model: str = "gpt-4o-mini"
    chat_temperature: float = 0.2
    chat_timeout_s: float = Field(default=120.0, gt=0)
    chat_max_retries: int = Field(default=2, ge=0)
    max_question_chars: int = Field(default=4000, ge=1)
    answer_timeout_s: float = Field(default=300.0, gt=0)
    max_answers_at_once: int = Field(default=100, ge=1)
    shutdown_grace_s: float = Field(default=10.0, ge=0)

    # Feedback on answers, and the records `threadbot report` reads
    feedback: bool = True  # 👍/👎 under every final answer
    records_retention_days: float = Field(default=90.0, gt=0)
    # Who "needs a human" pings in the thread (a Slack user group id S…, a Discord role id),
    # on a 👎, an uncovered question, or both; unset: nobody is pinged.
    escalate_slack_usergroup: str | None = None
    escalate_discord_role: int | None = None
    escalate_on: Annotated[list[Literal["down", "uncovered"]], NoDecode] = ["down"]

    # What comes with a question: the thread it was asked in, the files attached to it
    thread_context_messages: int = Field(default=30, ge=0, le=1000)
    thread_context_tokens: int = Field(default=1500, ge=100)
    files_max: int = Field(default=5, ge=0)
    file_max_mb: float = Field(default=5.0, gt=0)
    file_max_chars: int = Field(default=20_000, ge=100)

    # Slack
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_host: str = "0.0.0.0"
    slack_port: int = 3000
    slack_reuse_port: bool = False
    slack_streaming: Literal["edit", "native"] = "edit"
    slack_edit_interval_ms: int = Field(default=1000, ge=0)
    slack_post_interval_ms: int = Field(default=1000, ge=0)
    slack_reply_modes: ModeMap = Field(default_factory=dict)
    slack_allowed_users: NameList = Field(default_factory=list)
    slack_allowed_usergroups: NameList = Field(default_factory=list)
    slack_channels: NameList = Field(default_factory=list)
    slack_allow_dms: bool = True

    # Discord
    discord_token: SecretStr | None = None
    discord_api_url: str | None = None
    discord_channels: IdList = Field(default_factory=list)
    discord_guilds: IdList = Field(default_factory=list)
    discord_allow_dms: bool = False
    discord_allowed_users: IdList = Field(default_factory=list)
    discord_allowed_roles: IdList = Field(default_factory=list)
    discord_shard_count: int | None = None
    discord_shard_ids: IdList = Field(default_factory=list)
    discord_edit_interval_ms: int = Field(default=1500, ge=0)
    discord_reply_modes: ModeMap = Field(default_factory=dict)

    # MCP server: the bearer token each request to `threadbot mcp --http` must carry
    mcp_token: SecretStr | None = None

    log_level: str = "INFO"

    # Operations: /healthz, /readyz and /metrics on their own port (unset: no such server;
    # Slack's HTTP mode serves them on SLACK_PORT anyway), and the log lines' format.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    log_format: Literal["text", "json"] = "text"

    _split = field_validator(
        "discord_channels",
        "discord_guilds",
        "discord_allowed_users",
        "discord_allowed_roles",
        "discord_shard_ids",
        mode="before",
    )(_split_ids)
    _patterns = field_validator("ingest_ignore", "escalate_on", mode="before")(_split_patterns)
    _names = field_validator(
        "slack_allowed_users", "slack_allowed_usergroups", "slack_channels", mode="before"
    )(_split_ids)
    _modes = field_validator("slack_reply_modes", "discord_reply_modes", mode="before")(
        _split_modes
    )

    @field_validator("slack_reply_modes", "discord_reply_modes")
    @classmethod
    def _modes_the_platform_has(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        platform = str(info.field_name).split("_")[0]
        allowed = PLATFORM_MODES[platform]
        for channel, mode in value.items():
            if mode not in allowed:
                raise ValueError(
                    f"{channel}: {platform.title()} has no {mode!r} mode "
                    f"(one of {', '.join(sorted(allowed))})"
                )
        return value

    @field_validator("redis_url")
    @classmethod
    def _a_redis_url(cls, value: str | None) -> str | None:
        schemes = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
        if value is not None and not value.startswith(schemes):
            raise ValueError(
                "must start with redis://, rediss:// or unix:// (one server, e.g. "
                "redis://localhost:6379/0) or redis+cluster:// or rediss+cluster:// (a cluster)"
            )
        return value

    @field_validator("knowledge_base")
    @classmethod
    def _a_base_name(cls, value: str | None) -> str | None:
        if value is None or value == DEFAULT_BASE:
            return None
        if not BASE_NAME.fullmatch(value):
            raise ValueError(
                "a knowledge base's name is lowercase letters, digits, - and _ (at most 40), "
                "starting with a letter or a digit"
            )
        return value

    @field_validator("redis_namespace", "history_key_prefix")
    @classmethod
    def _no_hash_tag(cls, value: str) -> str:
        # The first {...} of a key picks its Redis Cluster slot: that must be the session's.
        if "{" in value or "}" in value:
            raise ValueError("must not contain { or } (they pick a key's Redis Cluster slot)")
        return value

    @model_validator(mode="after")
    def _shards_need_a_count(self) -> Settings:
        if self.discord_shard_ids and self.discord_shard_count is None:
            raise ValueError("DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT (the total of shards)")
        return self

    @property
    def data_dir(self) -> Path:
        return self.threadbot_data_dir

    @property
    def index_dir(self) -> Path:
        """The knowledge base's folder: `index` for the default one, `kbs/NAME` for a named."""
        if self.knowledge_base is None:
            return self.threadbot_data_dir / "index"
        return self.threadbot_data_dir / "kbs" / self.knowledge_base

    @property
    def index_namespace(self) -> str:
        """Where the knowledge base is published in Redis: its keys begin with this."""
        if self.knowledge_base is None:
            return self.redis_namespace
        return f"{self.redis_namespace}kb:{self.knowledge_base}:"

    def for_base(self, name: str | None) -> Settings:
        """These settings, for the knowledge base `name` (None or "default": the default)."""
        return self.model_copy(update={"knowledge_base": Settings._a_base_name(name)})

    @property
    def index_part_bytes(self) -> int:
        return max(1, int(self.index_part_mb * 1024 * 1024))

    @property
    def file_max_bytes(self) -> int:
        return int(self.file_max_mb * 1024 * 1024)

    @property
    def ingest_max_file_bytes(self) -> int:
        return int(self.ingest_max_file_mb * 1024 * 1024)

    @property
    def embeddings_kind(self) -> Literal["local", "openai"]:
        """`local` unless `EMBEDDINGS=openai` says otherwise: adding a chat model's key must not
        change how documents are embedded (an index built offline would not be searched)."""
        return self.embeddings or "local"

    @property
    def generates_answers(self) -> bool:
        """A chat model is configured: a key (OpenAI, Azure) or a local server (Ollama, vLLM)."""
        return self.openai_api_key is not None or self.openai_base_url is not None


def explain(error: ValidationError) -> list[str]:
    """Each problem as the user fixes it, `ENV_VAR: what is wrong`, never with the value given
    (pydantic's own text quotes the input, which may be a token)."""
    lines = []
    for problem in error.errors(include_url=False, include_input=False, include_context=False):
        # The field alone: a list setting's location goes on with the item's index.
        name = str(problem["loc"][0]).upper() if problem["loc"] else ""
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"{name}: {message}" if name else message)
    return lines


def load(command: str) -> tuple[Settings, list[str]]:
    """The settings for `threadbot COMMAND`, and the problems it may ignore: a bad setting of a
    platform the command does not run (`SLACK_STREAMING=fast` for `threadbot chat`) is reported,
    not fatal. Raises `ValidationError` for anything else."""
    try:
        return Settings(), []
    except ValidationError as error:
        foreign = _foreign_fields(error, command)
        if foreign is None:
            raise
        defaults = {
            name: Settings.model_fields[name].get_default(call_default_factory=True)
            for name in foreign
        }
        return Settings(**defaults), explain(error)


def _foreign_fields(error: ValidationError, command: str) -> set[str] | None:
    """The fields in error when all belong to a platform other than `command`'s, else None."""
    names = set()
    for problem in error.errors(include_url=False, include_input=False):
        name = str(problem["loc"][0]) if problem["loc"] else ""
        platform = name.split("_")[0]
        if platform not in ("slack", "discord") or platform == command:
            return None
        names.add(name)
    return names
