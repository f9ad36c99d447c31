"""Two replicas under hundreds of Slack and Discord users: ``python -m bench.load``."""
