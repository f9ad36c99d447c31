"""Every object that holds a secret is safe to print: repr() and str() of each config built
with known secrets show none of them (a traceback's locals, a debug print, a log line)."""

from __future__ import annotations

import pytest

from adapters.discord.interactions import InteractionsConfig
from adapters.discord.tree import GatewayConfig
from adapters.slack import SlackConfig
from bot.config import load_settings
from bot.sandbox import SandboxConfig

SECRETS = {
    "bot_token": "xoxb-secret-bot-token-1234",
    "client_secret": "secret-client-5678",
    "signing_secret": "secret-signing-9abc",
    "app_token": "xapp-secret-app-def0",
    "discord_token": "secret-discord-token-1357",
    "api_key": "sk-secret-api-key-2468",
}


def _configs() -> list[object]:
    s = SECRETS
    return [
        SlackConfig(
            bot_token=s["bot_token"],
            client_secret=s["client_secret"],
            signing_secret=s["signing_secret"],
            app_token=s["app_token"],
        ),
        SlackConfig(client_id="123.456", client_secret=s["client_secret"]),
        GatewayConfig(token=s["discord_token"]),
        InteractionsConfig(application_id="1", public_key="ab" * 32),
        SandboxConfig(api_key=s["api_key"]),
    ]


@pytest.mark.parametrize("config", _configs(), ids=lambda c: type(c).__name__)
def test_configs_print_no_secret(config: object) -> None:
    for shown in (repr(config), str(config), f"{config}", f"{config!r}"):
        assert not [name for name, value in SECRETS.items() if value in shown], shown


def test_the_settings_print_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "OPENAI_API_KEY": SECRETS["api_key"],
        "SLACK_BOT_TOKEN": SECRETS["bot_token"],
        "SLACK_SIGNING_SECRET": SECRETS["signing_secret"],
        "SLACK_APP_TOKEN": SECRETS["app_token"],
        "SLACK_CLIENT_SECRET": SECRETS["client_secret"],
        "DISCORD_TOKEN": SECRETS["discord_token"],
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    for shown in (repr(settings), str(settings)):
        assert not [v for v in SECRETS.values() if v in shown], shown
