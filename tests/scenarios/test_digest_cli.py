"""`quotabot digest` as an operator runs it: a real process on a real SQLite file, printing a
digest, and sending one through the Slack Web API (the fake), once."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from bot.app import open_app
from bot.config import load_settings
from bot.store import UsageRow
from fakes.slack_api import DEFAULT_TOKEN, FakeSlackAPI
from tests.scenarios.test_chat_cli import quotabot

DAY = date(2026, 11, 24)


async def _seed(db_file: Path) -> None:
    async with open_app(load_settings(database_url=f"sqlite:///{db_file}")) as app:
        await app.digests.settings.set(
            "slack", "T1", channel="C0DIGEST01", at="09:00", tz="Pacific/Auckland"
        )
        # 24 Nov in Auckland (NZDT, UTC+13) is 23 Nov 11:00 to 24 Nov 11:00 UTC.
        for n, (at, cost) in enumerate(
            (
                (datetime(2026, 11, 23, 10, 59, tzinfo=UTC), "3"),
                (datetime(2026, 11, 23, 11, 0, tzinfo=UTC), "0.25"),
                (datetime(2026, 11, 24, 10, 59, tzinfo=UTC), "1.5"),
                (datetime(2026, 11, 24, 11, 0, tzinfo=UTC), "40"),
            )
        ):
            await app.usage.record(
                UsageRow(
                    call_id=f"c{n}",
                    request_id=f"r{n}",
                    created_at=at,
                    platform="slack",
                    workspace="T1",
                    channel="C1",
                    user="U1",
                    model="gpt-4o",
                    endpoint="chat",
                    prompt_tokens=5,
                    completion_tokens=5,
                    cost=Decimal(cost),
                    outcome="ok",
                )
            )


async def test_print_and_send(tmp_path: Path) -> None:
    db_file = tmp_path / "q.db"
    await _seed(db_file)
    env = {"QUOTABOT_DATABASE_URL": f"sqlite:///{db_file}"}

    printed = await asyncio.to_thread(quotabot, "digest", "--date", str(DAY), env=env)
    assert printed.returncode == 0, printed.stderr
    assert "quotabot digest: Tue 24 Nov 2026 (Pacific/Auckland)" in printed.stdout
    assert "Spend $1.75 · 2 requests answered" in printed.stdout

    missing = await asyncio.to_thread(quotabot, "digest", "--workspace", "T9", env=env)
    assert missing.returncode == 2 and "no digest is set up for T9" in missing.stderr

    unsent = await asyncio.to_thread(quotabot, "digest", "--send", "--date", str(DAY), env=env)
    assert unsent.returncode == 1
    assert "not sent: quotabot cannot post to slack" in unsent.stdout

    async with FakeSlackAPI() as api:
        env |= {"SLACK_BOT_TOKEN": DEFAULT_TOKEN, "SLACK_API_URL": api.url}
        for _ in range(2):
            sent = await asyncio.to_thread(
                quotabot, "digest", "--send", "--date", str(DAY), env=env
            )
            assert sent.returncode == 0, sent.stderr
        assert "posted" in sent.stdout or "another process" in sent.stdout
        assert len(api.history("C0DIGEST01")) == 1
        assert len(api.uploads) == 1


def test_a_fresh_install_has_a_terminal_digest_to_print_and_set(tmp_path: Path) -> None:
    env = {"QUOTABOT_DATA_DIR": str(tmp_path)}
    assert quotabot("chat", stdin="what is a token bucket?\n", env=env).returncode == 0
    chart = tmp_path / "chart.png"
    printed = quotabot("digest", "--print", "--date", "today", "--chart", str(chart), env=env)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith("# terminal local\n*quotabot digest: ")
    assert "1 requests answered" not in printed.stdout  # grammar
    assert "gpt-3.5-turbo: $0.000" in printed.stdout  # the chat's spend, its digits kept
    assert chart.read_bytes().startswith(b"\x89PNG")

    assert "No daily digest is set up here yet" in quotabot("digest", "show", env=env).stdout
    done = quotabot("digest", "set", "terminal", "08:30", "Europe/Paris", env=env)
    assert done.returncode == 0 and "08:30 Europe/Paris" in done.stdout
    assert quotabot("digest", "off", env=env).stdout.strip() == "The daily digest is off."
    shown = quotabot("digest", "show", env=env).stdout
    assert "is off" in shown and "08:30 Europe/Paris" in shown
    bad = quotabot("digest", "set", "terminal", "25:00", "Mars/Olympus", env=env)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_send_with_slack_unreachable_is_one_line_per_digest(tmp_path: Path) -> None:
    env = {"QUOTABOT_DATA_DIR": str(tmp_path)}
    setup = ("digest", "set", "C0123ABC", "09:00", "UTC", "--platform", "slack")
    assert quotabot(*setup, "--workspace", "T1", env=env).returncode == 0
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}/api/"
    sent = quotabot(
        "digest", "--send", env={**env, "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_API_URL": dead}
    )
    assert sent.returncode == 1
    assert sent.stdout.startswith("slack T1 ") and "not sent: slack did not answer" in sent.stdout
    assert "Traceback" not in sent.stderr and "Unclosed client session" not in sent.stderr


async def test_send_reaches_a_workspace_installed_through_oauth(tmp_path: Path) -> None:
    """No SLACK_BOT_TOKEN: the workspace installed the app, and its token is in the database
    (as `serve` keeps it). `digest --send` builds the same Slack adapter as `serve`, so it
    finds the token there instead of reporting that it cannot post."""
    from slack_sdk.oauth.installation_store.models.installation import Installation
    from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore

    db_file = tmp_path / "q.db"
    await _seed(db_file)
    async with FakeSlackAPI(token="xoxb-installed-in-T1") as api:
        async with open_app(load_settings(database_url=f"sqlite:///{db_file}")) as app:
            store = AsyncSQLAlchemyInstallationStore(client_id="111.222", engine=app.db.engine)
            await store.async_save(
                Installation(
                    app_id="A1",
                    team_id="T1",
                    user_id="U1",
                    bot_token=api.token,
                    bot_id="B1",
                    bot_user_id="UBOT",
                    bot_scopes=["chat:write", "files:write"],
                )
            )
        env = {
            "QUOTABOT_DATABASE_URL": f"sqlite:///{db_file}",
            "SLACK_CLIENT_ID": "111.222",
            "SLACK_CLIENT_SECRET": "oauth-secret",
            "SLACK_API_URL": api.url,
        }
        sent = await asyncio.to_thread(quotabot, "digest", "--send", "--date", str(DAY), env=env)
        assert sent.returncode == 0, (sent.stdout, sent.stderr)
        (post,) = [x for x in api.exchanges if x.call.method == "chat.postMessage"]
        assert post.token == api.token  # the installed workspace's own token
        assert len(api.history("C0DIGEST01")) == 1
