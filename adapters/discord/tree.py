"""The gateway's slash commands: discord.py's CommandTree, built from ``adapters.discord.spec``
(what sync-commands registers), each command handed to the CommandRunner as an Invocation."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import discord
from discord import app_commands

from adapters.discord.commands import CommandRunner
from adapters.discord.invocation import TOKEN_TTL, File, Invocation, deadline_for
from adapters.discord.rest import DiscordREST
from adapters.discord.spec import COMMANDS

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConfig:
    token: str = field(repr=False)
    api_url: str | None = None
    """REST base URL instead of Discord's (discord.py's ``Route.BASE``: process-wide)."""
    message_content: bool = False
    """Ask for the privileged Message Content intent (replies without a ping then work too)."""
    token_ttl: float = TOKEN_TTL
    margin: float = 30.0


def spec(*path: str) -> dict[str, Any]:
    """A command or option as ``COMMANDS`` defines it, so that the tree and sync-commands
    agree: ``spec("budget", "set", "limit")``."""
    node: dict[str, Any] = {"options": COMMANDS}
    for name in path:
        node = next(o for o in node["options"] if o["name"] == name)
    return node


def _doc(*path: str) -> str:
    return str(spec(*path)["description"])


def _descriptions(*path: str) -> dict[str, str]:
    return {o["name"]: o["description"] for o in spec(*path)["options"]}


class _InteractionReply:
    def __init__(
        self,
        interaction: discord.Interaction[Any],
        *,
        ephemeral: bool,
        rest: DiscordREST | None = None,
    ):
        """``rest``: for message components, which discord.py sends only as its own Views
        (kept in its memory, lost on restart): quotabot's buttons are plain JSON, and any
        replica answers their clicks (adapters.discord.more)."""
        self.interaction = interaction
        self.ephemeral = ephemeral
        self.rest = rest

    async def edit(self, text: str, message: str | None = None) -> None:
        if message is None:
            await self.interaction.edit_original_response(
                content=text, allowed_mentions=discord.AllowedMentions.none()
            )
        else:
            await self.interaction.followup.edit_message(
                int(message), content=text, allowed_mentions=discord.AllowedMentions.none()
            )

    async def show_embed(self, embed: dict[str, Any]) -> None:
        await self.interaction.edit_original_response(
            content=None, embed=discord.Embed.from_dict(embed)
        )

    async def show_buttons(self, components: list[dict[str, Any]]) -> None:
        if self.rest is None:
            return
        await self.rest.request(
            "PATCH",
            "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
            json={"components": components},
            webhook_id=str(self.interaction.application_id),
            webhook_token=self.interaction.token,
        )

    async def follow_up(self, text: str) -> str:
        sent = await self.interaction.followup.send(
            text,
            ephemeral=self.ephemeral,
            allowed_mentions=discord.AllowedMentions.none(),
            wait=True,
        )
        return str(sent.id)


def build_tree(
    client: discord.Client,
    runner: CommandRunner,
    config: GatewayConfig,
    *,
    rest: DiscordREST | None = None,
) -> app_commands.CommandTree[Any]:
    tree: app_commands.CommandTree[Any] = app_commands.CommandTree(client)

    async def run(
        interaction: discord.Interaction[Any],
        name: str,
        options: dict[str, Any],
        files: dict[str, File] | None = None,
    ) -> None:
        inv = invocation(interaction, name, options, config, files=files)
        if not await runner.first(inv.dedupe_key):
            return
        await interaction.response.defer(ephemeral=inv.private, thinking=True)
        await runner.run(inv, _InteractionReply(interaction, ephemeral=inv.private, rest=rest))

    @tree.command(name="ask", description=_doc("ask"))
    @app_commands.describe(**_descriptions("ask"))
    async def ask(
        interaction: discord.Interaction[Any],
        prompt: str,
        model: str | None = None,
        private: bool = False,
        image: discord.Attachment | None = None,
    ) -> None:
        options: dict[str, Any] = {"prompt": prompt, "private": private}
        if model:
            options["model"] = model
        files = {"image": file_of(image)} if image is not None else None
        await run(interaction, "ask", options, files)

    @ask.autocomplete("model")
    async def models(
        interaction: discord.Interaction[Any], typed: str
    ) -> list[app_commands.Choice[str]]:
        who = invocation(interaction, "ask", {}, config).who
        names = await runner.model_choices(who, typed)
        return [app_commands.Choice(name=n, value=n) for n in names]

    @tree.command(name="usage", description=_doc("usage"))
    @app_commands.describe(**_descriptions("usage"))
    async def usage(interaction: discord.Interaction[Any], dashboard: bool = False) -> None:
        await run(interaction, "usage", {"dashboard": dashboard} if dashboard else {})

    budget = app_commands.Group(name="budget", description=_doc("budget"))

    @budget.command(name="show", description=_doc("budget", "show"))
    async def show(interaction: discord.Interaction[Any]) -> None:
        await run(interaction, "budget show", {})

    choices = [
        app_commands.Choice(name=c["name"], value=c["value"])
        for c in spec("budget", "set", "limit")["choices"]
    ]

    @budget.command(name="set", description=_doc("budget", "set"))
    @app_commands.describe(**_descriptions("budget", "set"))
    @app_commands.choices(limit=choices)
    async def set_(
        interaction: discord.Interaction[Any], scope: str, limit: str, value: str
    ) -> None:
        await run(interaction, "budget set", {"scope": scope, "limit": limit, "value": value})

    tree.add_command(budget)
    tree.add_command(_digest_group(run))

    @tree.command(name="transcribe", description=_doc("transcribe"))
    @app_commands.describe(**_descriptions("transcribe"))
    async def transcribe(
        interaction: discord.Interaction[Any],
        file: discord.Attachment,
        question: str | None = None,
    ) -> None:
        options: dict[str, Any] = {"file": str(file.id)}
        if question:
            options["question"] = question
        inv = invocation(interaction, "transcribe", options, config, files={"file": file_of(file)})
        if not await runner.first(inv.dedupe_key):
            return
        await interaction.response.defer(ephemeral=inv.private, thinking=True)
        await runner.run(inv, _InteractionReply(interaction, ephemeral=inv.private, rest=rest))

    tree.on_error = _on_tree_error  # type: ignore[method-assign]
    return tree


def _digest_group(
    run: Callable[[discord.Interaction[Any], str, dict[str, Any]], Awaitable[None]],
) -> app_commands.Group:
    digest = app_commands.Group(name="digest", description=_doc("digest"))

    def simple(name: str) -> None:
        async def callback(interaction: discord.Interaction[Any]) -> None:
            await run(interaction, f"digest {name}", {})

        digest.add_command(
            app_commands.Command(
                name=name, description=_doc("digest", name), callback=callback, parent=digest
            )
        )

    simple("show")  # in the order of COMMANDS, which sync-commands registers

    @digest.command(name="set", description=_doc("digest", "set"))
    @app_commands.describe(**_descriptions("digest", "set"))
    async def set_(
        interaction: discord.Interaction[Any],
        channel: discord.abc.GuildChannel,
        time: str,
        timezone: str,
    ) -> None:
        options = {"channel": str(channel.id), "time": time, "timezone": timezone}
        await run(interaction, "digest set", options)

    for name in ("now", "on", "off"):
        simple(name)

    def choices(*path: str) -> list[app_commands.Choice[str]]:
        return [
            app_commands.Choice(name=c["name"], value=c["value"]) for c in spec(*path)["choices"]
        ]

    @digest.command(name="report", description=_doc("digest", "report"))
    @app_commands.describe(**_descriptions("digest", "report"))
    @app_commands.choices(
        period=choices("digest", "report", "period"),
        day=choices("digest", "report", "day"),
        switch=choices("digest", "report", "switch"),
    )
    async def report(
        interaction: discord.Interaction[Any],
        period: str,
        time: str | None = None,
        timezone: str | None = None,
        day: str | None = None,
        switch: str | None = None,
    ) -> None:
        given = {"time": time, "timezone": timezone, "day": day, "switch": switch}
        options = {"period": period, **{k: v for k, v in given.items() if v}}
        await run(interaction, "digest report", options)

    return digest


async def _on_tree_error(
    interaction: discord.Interaction[Any], error: app_commands.AppCommandError
) -> None:
    log.error("Discord command %s failed: %s", interaction.id, error, exc_info=error)


def invocation(
    interaction: discord.Interaction[Any],
    name: str,
    options: dict[str, Any],
    config: GatewayConfig,
    *,
    files: dict[str, File] | None = None,
) -> Invocation:
    user = interaction.user
    roles: frozenset[str] = frozenset()
    if isinstance(user, discord.Member):
        roles = frozenset(str(r.id) for r in user.roles if r is not None)
    return Invocation(
        id=str(interaction.id),
        name=name,
        options=options,
        guild=str(interaction.guild_id) if interaction.guild_id else None,
        channel=str(interaction.channel_id),
        user=str(user.id),
        permissions=interaction.permissions.value,
        roles=roles,
        deadline=deadline_for(
            interaction.created_at.timestamp(),
            time.time(),
            asyncio.get_running_loop().time(),
            ttl=config.token_ttl,
            margin=config.margin,
        ),
        files=files or {},
    )


def file_of(a: discord.Attachment) -> File:
    return File(
        name=a.filename, url=a.url, size=a.size, media_type=a.content_type, seconds=a.duration
    )
