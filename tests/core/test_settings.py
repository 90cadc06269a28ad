"""Settings: read once from the environment and the working folder's `.env`, errors by name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.settings import Settings, explain, load
from tests.conftest import IsolatedSettings

SECRET = "xoxb-do-not-print-me"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No setting from the developer's shell, and a working folder of our own with no `.env`."""
    for name in list(os.environ):
        if name.lower() in Settings.model_fields or name == "XDG_DATA_HOME":
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return monkeypatch


def problems(**values: object) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        IsolatedSettings(**values)
    return explain(caught.value)


def test_defaults_need_no_account_at_all() -> None:
    settings = IsolatedSettings()
    assert settings.redis_url is None
    assert settings.openai_api_key is None
    assert not settings.generates_answers
    assert settings.embeddings_kind == "local"
    assert settings.log_format == "text"


def test_settings_are_frozen() -> None:
    settings = IsolatedSettings()
    with pytest.raises(ValidationError):
        settings.chat_model = "other"  # type: ignore[misc]


def test_a_key_or_a_local_server_means_generated_answers() -> None:
    assert IsolatedSettings(openai_api_key="sk-x").generates_answers
    assert IsolatedSettings(openai_base_url="http://localhost:11434/v1").generates_answers


def test_a_chat_models_key_never_changes_the_embeddings() -> None:
    assert IsolatedSettings(openai_api_key="sk-x").embeddings_kind == "local"
    assert IsolatedSettings(embeddings="openai").embeddings_kind == "openai"


def test_derived_paths_and_sizes(tmp_path: Path) -> None:
    settings = IsolatedSettings(
        threadbot_data_dir=tmp_path, index_part_mb=0.5, ingest_max_file_mb=2
    )
    assert settings.data_dir == tmp_path
    assert settings.index_dir == tmp_path / "index"
    assert settings.index_part_bytes == 512 * 1024
    assert settings.ingest_max_file_bytes == 2 * 1024 * 1024
    assert IsolatedSettings(index_part_mb=1e-9).index_part_bytes == 1  # never zero


def test_id_lists_and_patterns_accept_the_environments_form() -> None:
    settings = IsolatedSettings(
        discord_channels="1,2 3", discord_guilds=" 4 ,, 5", ingest_ignore="*.log, drafts/ ,"
    )
    assert settings.discord_channels == [1, 2, 3]
    assert settings.discord_guilds == [4, 5]
    assert settings.ingest_ignore == ["*.log", "drafts/"]
    assert IsolatedSettings(discord_channels=[7]).discord_channels == [7]


def test_id_lists_and_patterns_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DISCORD_ALLOWED_USERS", "10, 20")
    clean_env.setenv("INGEST_IGNORE", "*.tmp,build/")
    settings = Settings()
    assert settings.discord_allowed_users == [10, 20]
    assert settings.ingest_ignore == ["*.tmp", "build/"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"redis_url": "localhost:6379"}, "REDIS_URL: must start with redis://"),
        ({"history_max_messages": 1}, "HISTORY_MAX_MESSAGES: Input should be greater than"),
        ({"lease_s": 0}, "LEASE_S: Input should be greater than 0"),
        ({"slack_streaming": "fast"}, "SLACK_STREAMING: Input should be 'edit' or 'native'"),
        ({"redis_namespace": "{bot}:"}, "REDIS_NAMESPACE: must not contain { or }"),
        ({"history_key_prefix": "h}"}, "HISTORY_KEY_PREFIX: must not contain { or }"),
        ({"metrics_port": 70000}, "METRICS_PORT: Input should be less than or equal to 65535"),
    ],
)
def test_each_problem_names_its_variable(values: dict[str, object], expected: str) -> None:
    (line,) = problems(**values)
    assert line.startswith(expected)


def test_every_problem_is_listed() -> None:
    lines = problems(slack_port="x", discord_edit_interval_ms=-1)
    assert sorted(line.split(":")[0] for line in lines) == [
        "DISCORD_EDIT_INTERVAL_MS",
        "SLACK_PORT",
    ]


def test_shard_ids_need_a_shard_count() -> None:
    assert problems(discord_shard_ids="0 1") == [
        "DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT (the total of shards)"
    ]
    assert IsolatedSettings(discord_shard_ids="0", discord_shard_count=2).discord_shard_ids == [0]


def test_a_bad_id_in_a_list_names_the_list() -> None:
    (line,) = problems(discord_channels="1,x")
    assert line.startswith("DISCORD_CHANNELS: ")


@pytest.mark.parametrize(
    "field",
    ["slack_port", "redis_url", "slack_streaming", "discord_channels", "lease_s", "log_format"],
)
def test_explain_never_prints_the_value_given(field: str) -> None:
    lines = problems(**{field: SECRET})
    assert lines
    assert all(SECRET not in line for line in lines)
    assert all(line.startswith(field.upper()) for line in lines)


def test_a_dotenv_in_the_working_folder_is_read(clean_env: pytest.MonkeyPatch) -> None:
    Path(".env").write_text("CHAT_MODEL=from-dotenv\nOPENAI_API_KEY=\nSLACK_PORT=3100\n")
    settings = Settings()
    assert settings.chat_model == "from-dotenv"
    assert settings.slack_port == 3100
    assert settings.openai_api_key is None  # `KEY=` left empty counts as not set


def test_a_dotenv_elsewhere_is_not_read(clean_env: pytest.MonkeyPatch) -> None:
    Path(".env").write_text("CHAT_MODEL=from-dotenv\n")
    Path("sub").mkdir()
    clean_env.chdir("sub")  # the parent's .env is not this folder's
    assert Settings().chat_model == "gpt-4o-mini"


def test_no_dotenv_at_all_is_fine(clean_env: pytest.MonkeyPatch) -> None:
    assert not Path(".env").exists()
    assert Settings().chat_model == "gpt-4o-mini"


def test_the_environment_is_read_and_beats_the_dotenv(clean_env: pytest.MonkeyPatch) -> None:
    Path(".env").write_text("CHAT_MODEL=from-dotenv\nRETRIEVAL_K=9\n")
    clean_env.setenv("CHAT_MODEL", "from-env")
    settings = Settings()
    assert settings.chat_model == "from-env"
    assert settings.retrieval_k == 9


def test_env_file_none_reads_no_dotenv(clean_env: pytest.MonkeyPatch) -> None:
    Path(".env").write_text("CHAT_MODEL=from-dotenv\n")
    assert Settings(_env_file=None).chat_model == "gpt-4o-mini"  # type: ignore[call-arg]


def test_the_data_dir_follows_xdg(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert Settings().threadbot_data_dir == tmp_path / "home" / ".local" / "share" / "threadbot"
    clean_env.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Settings().threadbot_data_dir == tmp_path / "xdg" / "threadbot"
    clean_env.setenv("THREADBOT_DATA_DIR", str(tmp_path / "mine"))
    assert Settings().threadbot_data_dir == tmp_path / "mine"


def test_load_reports_another_platforms_bad_setting(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SLACK_STREAMING", "fast")
    clean_env.setenv("DISCORD_CHANNELS", "general")
    clean_env.setenv("CHAT_MODEL", "kept")
    settings, ignored = load("chat")
    assert settings.slack_streaming == "edit"  # the default in its place
    assert settings.discord_channels == []
    assert settings.chat_model == "kept"  # everything else as set
    assert len(ignored) == 2
    assert any(line.startswith("SLACK_STREAMING: ") for line in ignored)
    assert any(line.startswith("DISCORD_CHANNELS") for line in ignored)


def test_load_refuses_a_bad_setting_of_the_commands_own_platform(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("SLACK_STREAMING", "fast")
    with pytest.raises(ValidationError):
        load("slack")
    settings, ignored = load("discord")
    assert settings.slack_streaming == "edit" and len(ignored) == 1


def test_load_refuses_a_bad_shared_setting_for_every_command(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("SLACK_STREAMING", "fast")
    clean_env.setenv("REDIS_URL", "localhost")
    for command in ("chat", "slack", "discord"):
        with pytest.raises(ValidationError):
            load(command)


def test_load_with_nothing_wrong(clean_env: pytest.MonkeyPatch) -> None:
    settings, ignored = load("chat")
    assert ignored == []
    assert settings.chat_model == "gpt-4o-mini"


def test_every_setting_is_in_env_example_with_a_comment() -> None:
    lines = (Path(__file__).resolve().parents[2] / ".env.example").read_text().splitlines()
    for name in Settings.model_fields:
        key = name.upper()
        at = next((i for i, ln in enumerate(lines) if ln.lstrip("# ").startswith(f"{key}=")), None)
        assert at is not None, f"{key} is not in .env.example"
        # The setting's line follows a comment (its own, or its group's).
        above = [ln for ln in lines[:at] if ln.strip()][-1]
        assert above.startswith("#"), key


def test_reply_modes_are_channel_mode_pairs_each_platform_can_do() -> None:
    settings = IsolatedSettings(
        slack_reply_modes="C0ASK:auto, C0HELP:mention", discord_reply_modes="12:forum 13:Thread"
    )
    assert settings.slack_reply_modes == {"C0ASK": "auto", "C0HELP": "mention"}
    assert settings.discord_reply_modes == {"12": "forum", "13": "thread"}
    assert problems(slack_reply_modes="C0ASK:forum") == [
        "SLACK_REPLY_MODES: C0ASK: Slack has no 'forum' mode (one of auto, mention)"
    ]
    assert problems(discord_reply_modes="12") == [
        "DISCORD_REPLY_MODES: '12' is not CHANNEL_ID:MODE (e.g. C0123ASK:auto)"
    ]


def test_slack_allow_lists_read_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SLACK_ALLOWED_USERS", "U1, U2 U3")
    clean_env.setenv("SLACK_ALLOW_DMS", "false")
    settings = Settings()
    assert settings.slack_allowed_users == ["U1", "U2", "U3"]
    assert not settings.slack_allow_dms and settings.slack_channels == []


def test_a_knowledge_base_is_named_plainly_and_has_its_own_folder_and_keys() -> None:
    named = IsolatedSettings(knowledge_base="private")
    assert named.index_dir == named.data_dir / "kbs" / "private"
    assert named.index_namespace == "threadbot:kb:private:"
    default = IsolatedSettings(knowledge_base="default")
    assert default.knowledge_base is None and default.index_dir == default.data_dir / "index"
    assert default.for_base("private") == named.for_base(None).for_base("private")
    assert problems(knowledge_base="../etc")[0].startswith("KNOWLEDGE_BASE: a knowledge base's")
