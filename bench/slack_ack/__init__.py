"""Slack events acknowledged per second by one ``quotabot serve``: ``python -m bench.slack_ack``."""
