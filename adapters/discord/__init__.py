"""Discord: slash commands over the gateway or HTTP interactions, mentions over the gateway.
See adapter.py for how its modules fit together."""

from adapters.discord.commands import CommandRunner
from adapters.discord.gateway import DiscordGateway
from adapters.discord.interactions import InteractionsConfig, InteractionsEndpoint
from adapters.discord.rest import DiscordAPIError, DiscordREST
from adapters.discord.spec import COMMANDS, sync_commands
from adapters.discord.tree import GatewayConfig

__all__ = [
    "COMMANDS",
    "CommandRunner",
    "DiscordAPIError",
    "DiscordGateway",
    "DiscordREST",
    "GatewayConfig",
    "InteractionsConfig",
    "InteractionsEndpoint",
    "sync_commands",
]
