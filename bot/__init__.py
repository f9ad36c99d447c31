"""quotabot: an OpenAI-compatible language model in team chat, with its cost and rate limits under control."""

__version__ = "0.1.0"
