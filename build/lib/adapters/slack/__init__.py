"""The Slack adapter: see adapter.py."""

from adapters.slack.adapter import SlackAdapter, SlackConfig

__all__ = ["SlackAdapter", "SlackConfig"]
