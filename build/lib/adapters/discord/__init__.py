"""Discord: slash commands over the gateway or HTTP interactions, mentions over the gateway."""

from adapters.discord.commands import COMMANDS, CommandRunner, sync_commands
from adapters.discord.gateway import DiscordGateway, GatewayConfig
from adapters.discord.interactions import InteractionsConfig, InteractionsEndpoint
from adapters.discord.rest import DiscordAPIError, DiscordREST

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
