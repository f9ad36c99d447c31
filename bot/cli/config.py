"""``quotabot config``: the settings in effect (secrets masked) and where each came from, under
the headings of their groups, then one line per thing quotabot talks to: the database, Redis,
each provider, Slack and Discord."""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from bot.config import DEFAULT_PROVIDER, GROUPS, SECRETS, ProviderSpec, Settings, env_name
from bot.config.groups import flat_names
from bot.store import Database, migrate

HELP = "the settings in effect and where each came from; check what quotabot talks to"
TIMEOUT = 5.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-checks", action="store_true", help="only print the settings")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    for heading, rows in effective(settings):
        if heading:
            print(f"\n{heading}")
        for name, value, source in rows:
            print(f"{name:<34} {value:<40} {source}")
    if args.no_checks:
        return 0
    print()
    failed = 0
    for what, check in _checks(settings):
        try:
            detail = await check()
        except Exception as exc:  # each check says what went wrong, never a traceback
            failed += 1
            print(f"FAIL  {what}: {_reason(exc)}")
        else:
            if detail is not None:
                print(f"ok    {what}: {detail}")
    return 1 if failed else 0


Row = tuple[str, str, str]
"""(name as set in the environment, value shown, where it came from)"""


def effective(settings: Settings) -> list[tuple[str, list[Row]]]:
    """Every setting, by group: (the group's title, its rows); first ("", the ungrouped ones)."""
    toml = _toml_keys()

    def row(field: str) -> Row:
        env = env_name(field, Settings.model_fields[field])
        if env in os.environ:
            source = "environment"
        elif field in SECRETS and f"{env}_FILE" in os.environ:
            source = f"{env}_FILE"
        elif field in toml:
            source = "config file"
        else:
            source = "default"
        return env, _shown(field, getattr(settings, field)), source

    grouped = {name: list(flat_names(group).values()) for name, group in GROUPS.items()}
    placed = {field for fields in grouped.values() for field in fields}
    sections = [("", [row(f) for f in Settings.model_fields if f not in placed])]
    for name, fields in grouped.items():
        sections.append((f"{GROUPS[name].TITLE} (settings.{name})", [row(f) for f in fields]))
    return sections


def _toml_keys() -> set[str]:
    path = os.environ.get("QUOTABOT_CONFIG")
    if not path:
        return set()
    with open(path, "rb") as f:  # already read once by the settings: it parses
        return set(tomllib.load(f))


def _shown(field: str, value: Any) -> str:
    if isinstance(value, SecretStr):
        return "set (hidden)"
    if value is None:
        return "unset"
    if field == "database_url":
        return make_url(value).render_as_string(hide_password=True)
    if isinstance(value, dict):
        return f"{len(value)} entries" if value else "none"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    return str(value)


Check = Callable[[], Awaitable[str | None]]


def _checks(settings: Settings) -> list[tuple[str, Check]]:
    async def database() -> str:
        url = settings.store.sqlalchemy_url
        async with Database(url) as db:
            await db.ping()
            revision = await migrate.current(db)
        where = make_url(url).render_as_string(hide_password=True)
        state = "up to date" if revision == migrate.head() else "needs `quotabot db upgrade`"
        return f"{where} answers; schema {revision or 'none'} ({state})"

    async def redis() -> str | None:
        redis_url = settings.budget.redis_url
        if not redis_url:
            return "not configured: budgets live in each process"
        from redis.asyncio import Redis

        client = Redis.from_url(redis_url, socket_connect_timeout=TIMEOUT)
        try:
            await client.ping()
        finally:
            await client.aclose()
        return "answers"

    def provider(name: str) -> Check:
        async def check() -> str:
            provider_settings = settings.provider
            if name == DEFAULT_PROVIDER and not provider_settings.configured:
                return "none set: `chat` uses the built-in sandbox, `serve` refuses to start"
            spec = provider_settings.spec(name)  # a key that is not set: FAIL, with what to set
            return await _provider_answers(spec)

        return check

    async def slack() -> str | None:
        slack_settings = settings.slack
        if slack_settings.bot_token is None:
            return "not configured"
        base = (slack_settings.api_url or "https://slack.com/api/").rstrip("/")
        token = slack_settings.bot_token.get_secret_value()
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            response = await http.post(
                f"{base}/auth.test", headers={"Authorization": f"Bearer {token}"}
            )
        body = response.json()
        if not body.get("ok"):
            raise RuntimeError(
                f"SLACK_BOT_TOKEN refused: {body.get('error', response.status_code)}"
            )
        return f"SLACK_BOT_TOKEN is the bot of workspace {body.get('team', '?')}"

    async def discord() -> str | None:
        discord_settings = settings.discord
        if discord_settings.token is None:
            return "not configured"
        base = (discord_settings.api_url or "https://discord.com/api/v10").rstrip("/")
        token = discord_settings.token.get_secret_value()
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            response = await http.get(
                f"{base}/users/@me", headers={"Authorization": f"Bot {token}"}
            )
        if response.status_code != 200:
            raise RuntimeError(f"DISCORD_TOKEN refused ({response.status_code})")
        return f"DISCORD_TOKEN is the bot {response.json().get('username', '?')}"

    named = [(f"provider {name}", provider(name)) for name in settings.provider.providers]
    return [
        ("database", database),
        ("redis", redis),
        ("provider", provider(DEFAULT_PROVIDER)),
        *named,
        ("slack", slack),
        ("discord", discord),
    ]


async def _provider_answers(spec: ProviderSpec) -> str:
    """Lists the provider's models with its key: the address answers, and takes the key."""
    base_url, headers = spec.base_url, dict(spec.headers)
    if spec.kind == "azure":
        url = f"{base_url.removesuffix('/openai')}/openai/models"
        params = {"api-version": spec.api_version or ""}
        if spec.api_key is not None:
            headers["api-key"] = spec.api_key.get_secret_value()
    else:
        url, params = f"{base_url}/models", {}
        if spec.api_key is not None:
            headers["Authorization"] = f"Bearer {spec.api_key.get_secret_value()}"
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        try:
            response = await http.get(url, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise RuntimeError(f"cannot reach {base_url}: {exc!r}") from exc
    if response.status_code in (401, 403):
        raise RuntimeError(f"{base_url} refused the key ({response.status_code})")
    if response.status_code >= 400:
        raise RuntimeError(f"GET {url} answered {response.status_code}")
    return f"{base_url} answers and takes the key"


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
