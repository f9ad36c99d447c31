"""The chat platforms: each a bot.chat.adapter.ChatAdapter, one package per platform."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.chat.adapter import ChatAdapter


def chat_adapters() -> dict[str, type[ChatAdapter]]:
    """Every platform quotabot can serve, by name. Imported only when called: the platforms'
    SDKs load for ``serve`` and ``digest --send``, not for every command."""
    from adapters.discord.adapter import Discord
    from adapters.slack import SlackAdapter

    return {"slack": SlackAdapter, "discord": Discord}
