"""What the Discord adapter itself says to users; the core's sentences are in bot.messages."""

from __future__ import annotations

WARNING = "⚠️"
NOT_ADMIN = (
    "Only members with the Manage Server permission (or a role or ID quotabot is configured "
    "to trust) can change budgets."
)
UNKNOWN_COMMAND = (
    "quotabot does not know the command `/{name}`. "
    "An admin may need to run `quotabot discord sync-commands`."
)
MALFORMED = (
    "quotabot could not read this command. Please try again; "
    "the admins can find the details in its logs."
)
UNSUPPORTED = "quotabot does not handle this kind of interaction."
EMPTY_PROMPT = "Ask me something, e.g. `@quotabot what is a token bucket?`"
EMPTY_ANSWER = "_(empty answer)_"
CUT_OFF = (
    "The answer did not come in time: Discord allows 15 minutes to answer a command. "
    "Please ask again (a shorter question or answer may help)."
)
CUT_OFF_REST = (
    "_(The rest of this answer is cut off: Discord allows 15 minutes to answer a command.)_"
)
DISABLED = "quotabot is switched off in this channel."
NO_FILE = "Attach the recording to transcribe: `/transcribe file:<your voice message>`."
THINKING = "_Thinking…_"


def warn(text: str) -> str:
    return f"{WARNING} {text}"


def from_core(text: str) -> str:
    """The core's chat text in Discord's Markdown (it uses Slack's emoji names)."""
    return text.replace(":warning:", WARNING)
