"""The Slack adapter: see app.py for how its modules fit together."""

from adapters.slack.app import SlackAdapter
from adapters.slack.config import SlackConfig

__all__ = ["SlackAdapter", "SlackConfig"]
