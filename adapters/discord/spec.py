"""The slash commands Discord is told about: what ``quotabot discord sync-commands`` registers,
and what the gateway's command tree is checked against (both modes offer the same)."""

from __future__ import annotations

from typing import Any

from adapters.discord.rest import DiscordREST
from bot.budget.policy import SETTINGS

_STRING, _BOOLEAN, _SUBCOMMAND, _CHANNEL, _ATTACHMENT = 3, 5, 1, 7, 11
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_CHOICES = 25
"""Discord shows at most 25 autocomplete choices."""
_SCOPE_HELP = "model, workspace, channel or user; or one by ID, e.g. channel:123"

COMMANDS: list[dict[str, Any]] = [
    {
        "name": "ask",
        "type": 1,
        "description": "Ask the model a question",
        "options": [
            {
                "type": _STRING,
                "name": "prompt",
                "description": "Your question",
                "required": True,
            },
            {
                "type": _STRING,
                "name": "model",
                "description": "Model to answer (default: this channel's)",
                "required": False,
                "autocomplete": True,
            },
            {
                "type": _BOOLEAN,
                "name": "private",
                "description": "Only you see the question and the answer",
                "required": False,
            },
            {
                "type": _ATTACHMENT,
                "name": "image",
                "description": "An image to ask about: png, jpeg, gif or webp, up to 20 MB",
                "required": False,
            },
        ],
    },
    {
        "name": "usage",
        "type": 1,
        "description": "Today's usage and spend here, and the budgets left (only you see it)",
        "options": [
            {
                "type": _BOOLEAN,
                "name": "dashboard",
                "description": "A sign-in link to the web dashboard instead (admins)",
                "required": False,
            }
        ],
    },
    {
        "name": "budget",
        "type": 1,
        "description": "Budget limits here",
        "options": [
            {
                "type": _SUBCOMMAND,
                "name": "show",
                "description": "The limits that apply here and how much of each is used",
            },
            {
                "type": _SUBCOMMAND,
                "name": "set",
                "description": "Change a limit (Manage Server or an admin role)",
                "options": [
                    {
                        "type": _STRING,
                        "name": "scope",
                        "description": _SCOPE_HELP,
                        "required": True,
                    },
                    {
                        "type": _STRING,
                        "name": "limit",
                        "description": "Which limit",
                        "required": True,
                        "choices": [{"name": k, "value": k} for k in SETTINGS],
                    },
                    {
                        "type": _STRING,
                        "name": "value",
                        "description": (
                            "A number, off to remove it; models: their names; "
                            "timezone: e.g. Europe/Paris"
                        ),
                        "required": True,
                    },
                ],
            },
        ],
    },
]
DIGEST_COMMAND: dict[str, Any] = {
    "name": "digest",
    "type": 1,
    "description": "The daily spend digest of this server",
    "options": [
        {
            "type": _SUBCOMMAND,
            "name": "show",
            "description": "Where and when the digest is posted",
        },
        {
            "type": _SUBCOMMAND,
            "name": "set",
            "description": "Post the digest daily in a channel (Manage Server or an admin role)",
            "options": [
                {
                    "type": _CHANNEL,
                    "name": "channel",
                    "description": "Where the digest and budget alerts go",
                    "required": True,
                },
                {
                    "type": _STRING,
                    "name": "time",
                    "description": "Local time of day, HH:MM, e.g. 09:00",
                    "required": True,
                },
                {
                    "type": _STRING,
                    "name": "timezone",
                    "description": "IANA time zone, e.g. Europe/Berlin or UTC",
                    "required": True,
                },
            ],
        },
        {
            "type": _SUBCOMMAND,
            "name": "now",
            "description": "Post today's digest so far (Manage Server or an admin role)",
        },
        {"type": _SUBCOMMAND, "name": "on", "description": "Switch the daily digest on"},
        {"type": _SUBCOMMAND, "name": "off", "description": "Switch the daily digest off"},
        {
            "type": _SUBCOMMAND,
            "name": "report",
            "description": "A weekly or monthly report in the digest channel (admins)",
            "options": [
                {
                    "type": _STRING,
                    "name": "period",
                    "description": "Weekly (the week before) or monthly (the month before)",
                    "required": True,
                    "choices": [
                        {"name": "weekly", "value": "weekly"},
                        {"name": "monthly", "value": "monthly"},
                    ],
                },
                {
                    "type": _STRING,
                    "name": "time",
                    "description": "Local time of day, HH:MM, e.g. 09:00",
                    "required": False,
                },
                {
                    "type": _STRING,
                    "name": "timezone",
                    "description": "IANA time zone, e.g. Europe/Paris or UTC",
                    "required": False,
                },
                {
                    "type": _STRING,
                    "name": "day",
                    "description": "The weekly report's day",
                    "required": False,
                    "choices": [{"name": d, "value": d} for d in _WEEKDAYS],
                },
                {
                    "type": _STRING,
                    "name": "switch",
                    "description": "Switch it on or off instead",
                    "required": False,
                    "choices": [{"name": "on", "value": "on"}, {"name": "off", "value": "off"}],
                },
            ],
        },
    ],
}
COMMANDS.append(DIGEST_COMMAND)
TRANSCRIBE_COMMAND: dict[str, Any] = {
    "name": "transcribe",
    "type": 1,
    "description": "Turn a voice message or audio file into text",
    "options": [
        {
            "type": _ATTACHMENT,
            "name": "file",
            "description": "The recording: mp3, m4a, ogg/opus, wav, webm or flac, up to 25 MB",
            "required": True,
        },
        {
            "type": _STRING,
            "name": "question",
            "description": "Something to ask about it (optional)",
            "required": False,
        },
    ],
}
COMMANDS.append(TRANSCRIBE_COMMAND)
KNOWN = frozenset(
    {"ask", "usage", "budget show", "budget set", "transcribe"}
    | {f"digest {o['name']}" for o in DIGEST_COMMAND["options"]}
)


async def sync_commands(rest: DiscordREST, application_id: str, guild: str | None = None) -> Any:
    """Register ``COMMANDS`` (replacing any others), in one server or globally."""
    if guild:
        return await rest.request(
            "PUT",
            "/applications/{application_id}/guilds/{guild_id}/commands",
            application_id=application_id,
            guild_id=guild,
            json=COMMANDS,
        )
    return await rest.request(
        "PUT",
        "/applications/{application_id}/commands",
        application_id=application_id,
        json=COMMANDS,
    )
