"""What the Slack adapter is told: tokens, secrets, scopes, admins, and its pace."""

from __future__ import annotations

from dataclasses import dataclass, field

PLATFORM = "slack"
BOT_SCOPES = (
    "app_mentions:read",
    "channels:history",
    "groups:history",
    "im:history",
    "mpim:history",
    "chat:write",
    "commands",
    "files:read",
    "files:write",
    "users:read",
    "assistant:write",
)
"""What deploy/slack-app-manifest.yaml asks for; OAuth installs ask for the same (a test holds
the two lists equal): files:write uploads the digest's chart."""
INSTALL_PATH, REDIRECT_PATH = "/slack/install", "/slack/oauth_redirect"


@dataclass(frozen=True, slots=True, kw_only=True)
class SlackConfig:
    """HTTP mode needs ``signing_secret``; Socket Mode needs ``app_token``; both may be on.

    One workspace: ``bot_token``. Any number of workspaces: ``client_id`` and
    ``client_secret`` instead, and each workspace installs the app through ``/slack/install``;
    its tokens are kept by slack-sdk's own SQLAlchemy installation store in quotabot's database.
    """

    bot_token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = BOT_SCOPES
    redirect_uri: str | None = None
    signing_secret: str | None = field(default=None, repr=False)
    app_token: str | None = field(default=None, repr=False)
    api_url: str | None = None
    admins: frozenset[str] = frozenset()
    """User IDs allowed to change budgets, besides the workspace's admins and owners."""
    assistant: bool = True
    """Messages in the app's DM threads answered as Slack's assistant pane's."""
    update_interval: float = 1.0
    """Seconds between edits of a streamed answer: chat.update allows about one a second."""
    socket_check: float = 30.0
    """Seconds between checks that the Socket Mode connection still carries messages."""
    socket_ping: float = 10.0
    """Seconds between pings; a connection without pongs for four of them counts as stalled."""
