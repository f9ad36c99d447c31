from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path

import pytest

from bot.budget.policy import Policy
from bot.config import GROUPS, Settings, load_settings
from bot.config.groups import flat_names
from bot.errors import ConfigError


def test_defaults_need_nothing_configured(tmp_path: Path) -> None:
    s = load_settings()
    assert not s.provider_configured  # so the sandbox answers
    assert (
        s.sqlalchemy_url == f"sqlite+aiosqlite:///{tmp_path / 'data' / 'quotabot' / 'quotabot.db'}"
    )
    assert s.default_model == "gpt-3.5-turbo"


def test_environment_beats_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "quotabot.toml"
    cfg.write_text(
        'default_model = "gpt-4o"\nmax_tokens = 100\nopenai_base_url = "http://llm:8000/v1"\n'
        '[models."llama3"]\ncontext_window = 8192\n'
        'input_price = "0.0001"\noutput_price = "0.0002"\n'
    )
    monkeypatch.setenv("QUOTABOT_CONFIG", str(cfg))
    monkeypatch.setenv("QUOTABOT_MAX_TOKENS", "200")
    s = load_settings()
    assert (s.default_model, s.max_tokens, s.provider_base_url) == (
        "gpt-4o",
        200,
        "http://llm:8000/v1",
    )
    assert s.catalog().get("llama3").input_price == Decimal("0.0001")

    monkeypatch.setenv("OPENAI_BASE_URL", "http://other/v1/")
    assert load_settings().provider_base_url == "http://other/v1"


def test_secrets_come_from_the_environment_and_never_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "shh")
    s = load_settings()
    assert s.openai_api_key is not None
    assert s.openai_api_key.get_secret_value() == "sk-very-secret"
    assert "sk-very-secret" not in repr(s)
    assert "shh" not in repr(s) and "shh" not in str(s.model_dump())


def test_a_secret_in_the_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "quotabot.toml"
    cfg.write_text('openai_api_key = "sk-oops"\n')
    monkeypatch.setenv("QUOTABOT_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match="environment only"):
        load_settings()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("max_tokens = 'many'", "max_tokens"),
        ("colour = 'blue'", "unknown settings: colour"),
        ("[models.x]\nprice = 1", "models.x.price"),
        ("not toml at all [", "not valid TOML"),
        ("[budgets.workspace]\ntimezone = 'CET+1'", "not a time zone quotabot knows"),
        ("[budgets.channel]\ntimezone = 'Europe/Paris'", "a time zone is set per workspace"),
        ("[budgets.user]\nspend_fortnight = 3", "budgets.user.spend_fortnight"),
    ],
)
def test_bad_files_say_what_is_wrong(
    content: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "quotabot.toml"
    cfg.write_text(content)
    monkeypatch.setenv("QUOTABOT_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_budget_windows_and_zones_come_from_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "quotabot.toml"
    cfg.write_text(
        '[budgets.workspace]\ntimezone = "Europe/Paris"\nspend_week = 25\n'
        '[budgets."workspace:T0123"]\ntimezone = "America/New_York"\n'
        "[budgets.user]\ntokens_week = 200000\n"
    )
    monkeypatch.setenv("QUOTABOT_CONFIG", str(cfg))
    policy = Policy(load_settings().budget.limit_values())
    assert policy.zone("workspace", "T9") == "Europe/Paris"
    assert policy.zone("channel", "C1", workspace="T0123") == "America/New_York"
    assert policy.zone("model", "gpt-4o") == "UTC"
    assert policy.value("user", "U1", "tokens_week") == 200_000


def test_plain_database_urls_get_an_async_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUOTABOT_DATABASE_URL", "postgresql://u@db:5432/quotabot")
    assert load_settings().sqlalchemy_url == "postgresql+asyncpg://u@db:5432/quotabot"
    assert "OPENAI_API_KEY" not in os.environ  # the clean_environ fixture is in force


def test_secrets_can_come_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Docker and Kubernetes mount secrets as files: ``<VAR>_FILE`` names one."""
    key, signing = tmp_path / "openai", tmp_path / "signing"
    key.write_text("sk-from-a-file\n")
    signing.write_text("s3cret")
    monkeypatch.setenv("OPENAI_API_KEY_FILE", str(key))
    monkeypatch.setenv("SLACK_SIGNING_SECRET_FILE", str(signing))
    settings = load_settings()
    assert settings.openai_api_key is not None
    assert settings.openai_api_key.get_secret_value() == "sk-from-a-file"
    assert settings.slack_signing_secret is not None
    assert settings.slack_signing_secret.get_secret_value() == "s3cret"

    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-env")  # the variable itself wins
    assert load_settings().openai_api_key.get_secret_value() == "sk-from-the-env"  # type: ignore[union-attr]

    monkeypatch.setenv("DISCORD_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=r"DISCORD_TOKEN_FILE names .*missing"):
        load_settings()


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("QUOTABOT_ADMIN_USERS", '["U0123"', 'write a JSON list such as ["U0123", "U0456"]'),
        ("QUOTABOT_LOG_LEVEL", "LOUD", "'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'"),
        ("QUOTABOT_DATABASE_URL", "mysql://me:pw@db/q", "SQLite or PostgreSQL, not mysql"),
        ("QUOTABOT_DATABASE_URL", "notaurl", "not a database URL"),
        ("QUOTABOT_REDIS_URL", "http://cache:6379", "write redis://host:6379/0"),
        ("QUOTABOT_DASHBOARD_SECRET", "pw@short", "at least 16 random characters"),
        ("QUOTABOT_ADMIN_TOKEN", "pw@admin", "at least 16 random characters"),
        ("QUOTABOT_PUBLIC_URL", "quotabot.example.com", "https://quotabot.example.com"),
        ("QUOTABOT_DASHBOARD_LINK_TTL", "5", "greater than or equal to 60"),
    ],
)
def test_a_wrong_setting_is_named_with_what_to_write(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, said: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    message = str(refused.value)
    assert f"{variable}: " in message and said in message
    assert "pw@" not in message  # a URL's password, or a secret, is never repeated


def test_id_lists_may_be_comma_separated_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUOTABOT_ADMIN_USERS", "U0123")
    monkeypatch.setenv("QUOTABOT_ALLOWED_CHANNELS", "C1, C2")
    monkeypatch.setenv("QUOTABOT_DENIED_CHANNELS", '["C3", "C4"]')
    monkeypatch.setenv("QUOTABOT_LOG_LEVEL", "debug")
    settings = load_settings()
    assert settings.admin_users == ["U0123"]
    assert (settings.allowed_channels, settings.denied_channels) == (["C1", "C2"], ["C3", "C4"])
    assert settings.log_level == "DEBUG"


def test_every_setting_is_in_exactly_one_group() -> None:
    shown = [flat for group in GROUPS.values() for flat in flat_names(group).values()]
    assert sorted(shown) == sorted(set(Settings.model_fields) - {"config"})


def test_groups_show_the_settings_as_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-secret")
    monkeypatch.setenv("QUOTABOT_ADMIN_USERS", "U1,U2")
    monkeypatch.setenv("QUOTABOT_HTTP_PORT", "9000")
    monkeypatch.setenv("QUOTABOT_DISCORD_ADMIN_ROLES", '["R1"]')
    settings = load_settings()
    for name, group in GROUPS.items():
        view = getattr(settings, name)
        assert isinstance(view, group)
        for attr, flat in flat_names(group).items():
            value = getattr(settings, flat)
            assert getattr(view, attr) == (frozenset(value) if isinstance(value, list) else value)
    assert settings.slack.bot_token is not None
    assert settings.slack.bot_token.get_secret_value() == "xoxb-secret"
    assert "xoxb-secret" not in repr(settings.slack)
    assert settings.access.admin_users == {"U1", "U2"}
    assert settings.discord.admin_roles == {"R1"}
    assert settings.web.port == 9000
    assert settings.provider.base_url == "https://api.openai.com/v1"
    assert not settings.provider.configured
    assert settings.store.sqlalchemy_url == settings.sqlalchemy_url


def test_a_copy_with_changes_shows_them_in_its_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve --no-discord`` turns Discord off with a copy: its group must not be stale."""
    monkeypatch.setenv("DISCORD_TOKEN", "secret")
    settings = load_settings()
    assert settings.discord.token is not None
    off = settings.model_copy(update={"discord_token": None})
    assert off.discord.token is None and settings.discord.token is not None


def test_the_readme_table_has_the_groups_headings_in_order() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme[readme.index("| environment variable | TOML key |") :]
    table = table[: table.index("\n\n")]
    headings = re.findall(r"^\| \*\*(.+?)\*\* \|", table, re.M)
    assert headings == [group.TITLE for group in GROUPS.values()]
