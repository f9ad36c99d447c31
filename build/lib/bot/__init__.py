"""quotabot: an OpenAI-compatible language model in team chat, its cost and rate limits in check."""

__version__ = "0.1.0"
