"""Every sentence quotabot says to a chat user, in one place, so the wording stays consistent."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from bot import errors
from bot.budget.limits import reset_text
from bot.budget.tickets import QueueInfo
from bot.models import Reply

if TYPE_CHECKING:
    from bot.store.grants import Request

PROVIDER_BUSY = "The model is busy right now (rate limited). Please try again in a minute."
PROVIDER_DOWN = "The model provider is not answering right now. Please try again later."
PROVIDER_UNREACHABLE = (
    "quotabot cannot reach the model provider right now (no connection). Please try again "
    "later; an admin can check OPENAI_BASE_URL and that the server is up."
)
QUOTA = (
    "The model provider says this account is out of quota or credit. "
    "An admin needs to check the billing settings."
)
AUTH = "quotabot cannot sign in to the model provider. An admin needs to check its API key."
BAD_REQUEST = "The model provider refused this request: {detail}"
MODEL_NOT_FOUND = (
    "The model {model!r} does not exist at the provider, or this account cannot use it."
)
TOO_LARGE = (
    "This request is larger than the provider allows per minute for this model. "
    "Shorten the prompt or ask for a shorter answer."
)
REASONING_SPENT = (
    "_({model} spent all {tokens:,} tokens it may use on reasoning and wrote no answer. "
    "An admin can raise the channel's max_tokens or the model's reasoning_budget.)_"
)
STOPPING = "quotabot is restarting: please ask again in a moment."
INTERNAL = "Something went wrong inside quotabot. The admins can find the details in its logs."

# -- chat: what both adapters say around answers and commands ----------------------------------
THINKING = "_Thinking…_"
TRANSCRIBING = "_Transcribing…_"
EMPTY_ANSWER = "_(empty answer)_"
STOPPED = "_(stopped)_"
"""Under an answer its asker stopped while it streamed."""
STOP_BUTTON = "Stop"
STOP_ONLY_ASKER = "Only the person who asked can stop this answer."
STOP_FAILED = "The answer could not be stopped: the database did not answer. Try again."
RATED = {1: "Thanks: noted as a good answer. 👍", -1: "Thanks: noted as a poor answer. 👎"}
RATING_FAILED = "Your rating could not be kept: the database did not answer. Try again."
ANSWERING = "_Answering…_"
ASSISTANT_THINKING = "is thinking…"
"""Slack's assistant pane shows it after the app's name: "quotabot is thinking…"."""
ASSISTANT_UNTITLED = "A question"
ASSISTANT_GREETING = (
    "Hi! Ask me anything here. Answers count against your workspace's budgets: "
    "`/usage` shows what is left today."
)
ASSISTANT_PROMPTS = (
    ("Explain an error", "Explain this error and how to fix it:\n"),
    ("Summarise a text", "Summarise this in five short bullet points:\n"),
    ("Draft a reply", "Draft a short, friendly reply to this message:\n"),
)
"""Suggested in a new assistant thread: (title, the message it sends)."""
"""Where the Stop button sits while the answer streams into a message of its own."""
EMPTY_PROMPT = "Ask me something, e.g. `@quotabot what is a token bucket?`"
EMPTY_ASK = "Ask a question: `/ask what is a token bucket?`"
DASHBOARD_LINK = (
    "Your sign-in link to this workspace's dashboard, valid for {minutes} minutes (it signs "
    "in whoever opens it: keep it to yourself): {url}"
)
NO_DASHBOARD = "The dashboard is not served by this quotabot."
DASHBOARD_NOT_ADMIN = "Only admins (those who may change budgets) get a dashboard link."
NOT_ADMIN = {
    "slack": "Only workspace admins (or quotabot's configured admins) can change budgets.",
    "discord": (
        "Only members with the Manage Server permission (or a role or ID quotabot is "
        "configured to trust) can change budgets."
    ),
}
"""Who may change budgets, in each platform's terms; the terminal has no one to refuse."""
NO_DIGESTS = "Daily digests are not available in this quotabot."
NO_AUDIO = (
    "This message has no voice clip or audio file to transcribe "
    "(mp3, m4a, ogg/opus, wav, webm, flac)."
)
NO_FILE = "Attach the recording to transcribe: `/transcribe file:<your voice message>`."

# -- Discord: its 15-minute interaction tokens, and commands it did not register --------------
DISCORD_UNKNOWN_COMMAND = (
    "quotabot does not know the command `/{name}`. "
    "An admin may need to run `quotabot discord sync-commands`."
)
DISCORD_MALFORMED = (
    "quotabot could not read this command. Please try again; "
    "the admins can find the details in its logs."
)
DISCORD_UNSUPPORTED = "quotabot does not handle this kind of interaction."
DISCORD_CUT_OFF = (
    "The answer did not come in time: Discord allows 15 minutes to answer a command. "
    "Please ask again (a shorter question or answer may help)."
)
DISCORD_CUT_OFF_REST = (
    "_(The rest of this answer is cut off: Discord allows 15 minutes to answer a command.)_"
)


def explain(exc: BaseException, *, model: str | None = None) -> str:
    """The sentence a chat user sees for a failure: what happened and what to do, no traceback."""
    match exc:
        case errors.RequestRejected():
            return str(exc)
        case errors.QuotaExhausted():
            return QUOTA
        case errors.RequestTooLarge():
            return TOO_LARGE
        case errors.RateLimited():
            return PROVIDER_BUSY
        case errors.AuthenticationFailed():
            return AUTH
        case errors.ModelNotFound():
            return MODEL_NOT_FOUND.format(model=exc.model or model or "this channel's model")
        case errors.BadRequest():
            return BAD_REQUEST.format(detail=exc.message)
        case errors.ProviderDown():
            return PROVIDER_UNREACHABLE
        case errors.ServerError() | errors.ProviderTimeout() | errors.ProviderUnreachable():
            return PROVIDER_DOWN
        case _:
            return INTERNAL


def queued(info: QueueInfo) -> str:
    """Said at once when a request has to wait for budget."""
    wait = "a moment" if info.wait < 2 else f"about {round(info.wait)} s"
    return f"(queued for {info.model}: position {info.position}, {wait})"


def assistant_waiting(info: QueueInfo) -> str:
    """The assistant thread's status while its question waits for budget."""
    wait = "a moment" if info.wait < 2 else f"about {round(info.wait)} s"
    return f"is waiting for budget: position {info.position} for {info.model}, {wait}"


def queued_notice(info: QueueInfo) -> str:
    """The same, as a chat message of its own: "_Queued for gpt-4o: position 2, about 5 s_"."""
    return f"_{queued(info).strip('()').capitalize()}_"


def quantity(n: float | int | Decimal, unit: str) -> str:
    """``1 request``, ``2 requests``, ``1,000 tokens``; money as :func:`format_cost`."""
    if unit == "usd":
        return format_cost(Decimal(n))
    word = unit[:-1] if unit.endswith("s") and n == 1 else unit
    return f"{n:,.0f} {word}"


def used_of(used: float | int | Decimal, limit: float | int | Decimal, unit: str) -> str:
    """``$0.000450 of $0.50``, ``1 of 1 request``, ``1,200 of 40,000 tokens``."""
    if unit == "usd":
        return f"{format_cost(Decimal(used))} of {format_cost(Decimal(limit))}"
    return f"{used:,.0f} of {quantity(limit, unit)}"


def format_cost(cost: Decimal | None) -> str:
    if cost is None:
        return "unpriced"
    if cost and cost < Decimal("0.01"):
        return f"${cost:.6f}"
    return f"${cost:.4f}" if cost < 1 else f"${cost:,.2f}"


FALLBACK = "answered by {model} instead of {asked}: {why}"
FALLBACK_CAP = "{label} is used up until {at}"
FALLBACK_WAIT = "its queue would have kept you waiting too long"
FALLBACK_DOWN = "its provider is not answering"


def with_fallback(text: str, reply: Reply) -> str:
    """An answer's text, with the line that says another model answered (in italics)."""
    return f"{text}\n\n_{reply.fallback}_" if reply.fallback else text


def usage_line(reply: Reply) -> str:
    """The short line after an answer: tokens in/out, cost, model."""
    u = reply.usage
    estimated = " (estimated)" if reply.usage_estimated else ""
    cached = f" ({u.cached_tokens} cached)" if u.cached_tokens else ""
    reasoning = f" ({u.reasoning_tokens} reasoning)" if u.reasoning_tokens else ""
    return (
        f"[{u.prompt_tokens} in{cached} / {u.completion_tokens} out{reasoning}{estimated}"
        f" · {format_cost(reply.cost)} · {reply.model}]"
    )


# -- a person's own page (Slack's App Home): bot.chat.home, adapters.slack.home -----------------
HOME_TITLE = "quotabot"
USAGE_TITLE = "quotabot usage"
HOME_USAGE = (
    "**Your usage**\nToday (since {since}): {today}\nThis month (since the 1st, {zone}): {month}"
)
HOME_BUDGETS = "**Your budgets for {model}{what}**"
HOME_NO_BUDGETS = "No budget limits apply to you for {model}{what}."
HOME_VOICE = " (voice messages)"
HOME_CAP_LEFT = "• {label}: {left} left of {limit}, resets {at:%Y-%m-%d} {time}"
HOME_RATE_LEFT = "• {label}: {left} left of {limit}, refills continuously"
HOME_WAITING = "**Waiting:** your question is number {place} in line for {model}."
HOME_ADMIN = "For admins"
HOME_CHANNELS = "**Channels with settings of their own**"
HOME_NO_CHANNELS = "No channel has settings of its own: every channel uses the defaults."
HOME_CHANNEL = "{channel}: model `{model}`, {state}\nSystem prompt: {prompt}"
HOME_ON, HOME_OFF = "answering", "switched off"
HOME_NO_PROMPT = "_none_"
HOME_MORE_CHANNELS = "…and {more} more: `quotabot channel CHANNEL` shows and changes any of them."
HOME_LIMITS = "**Budget limits** (scope, limit, value)"
HOME_NO_LIMITS = "No budget limits are set, in the config file or with `/budget set`."
HOME_LIMIT = "• `{scope}` `{kind}` {value}{where}"
HOME_LIMIT_CONFIG = " (config file)"
HOME_MORE_LIMITS = "…and {more} more: `quotabot budget list` shows them all."
HOME_EDIT = "Edit"
HOME_SET_LIMIT = "Set a limit"
MODAL_CHANNEL_TITLE = "Channel settings"
MODAL_BUDGET_TITLE = "Set a budget limit"
MODAL_SAVE, MODAL_CANCEL = "Save", "Cancel"
MODAL_CHANNEL_INTRO = "Settings of {channel}. They apply to the next question asked there."
MODAL_MODEL, MODAL_PROMPT, MODAL_ENABLED = "Model", "System prompt", "Answer in this channel"
MODAL_PROMPT_HINT = "Leave it empty for no system prompt."
MODAL_SCOPE, MODAL_KIND, MODAL_VALUE = "Scope", "Limit", "Value"
MODAL_SCOPE_HINT = "workspace, channel or user (every one), model, or one by ID: channel:C0123"
MODAL_VALUE_HINT = (
    "A number ($ for spend), model names for models, a zone such as Europe/Paris for "
    "timezone, or off to remove the limit."
)
MODAL_REQUIRED = "Choose or type a value here."
MODEL_NOT_ALLOWED_HERE = "{model} is not among the models this channel may use: {allowed}"
PROMPT_TOO_LONG = "The system prompt may have at most {most:,} characters; this one has {length:,}."


# -- asking the admins for more budget from chat ------------------------------------------------
REQUEST_MORE = "Request more"
MORE_TITLE = "Ask for more budget"
MORE_INTRO = "*{label}* is used up until {resets}. The admins decide on a request."
MORE_AMOUNT = "How much more ({unit})"
MORE_REASON = "Why (the admins read this)"
MORE_SENT = (
    "Your request for {amount} more of {label} went to the admins. "
    "You will hear here when one of them decides."
)
MORE_NO_ADMINS = (
    "No admin can be reached here to grant more budget: quotabot's operators can name "
    "admins in QUOTABOT_ADMIN_USERS, or set a digest channel with /digest set."
)
MORE_ASKED = "{user} asks for {amount} more of {label} (used up until {resets}), because: {reason}"
MORE_GRANTED = "{admin} granted {amount} more of {label} to {user}, until {resets}."
MORE_DENIED = "{admin} did not grant {user} more of {label}."
MORE_NOT_ADMIN = "Only admins can grant more budget."
MORE_ONLY_ASKER = "Only the person this limit refused can ask for more with this button."
APPROVE, DENY = "Grant", "Deny"
MORE_NOT_YOURS = "Only the one this limit refused can ask for more with this button."
MORE_LAPSED = "This limit has reset since: ask again, and ask for more if it refuses you."


def amount_text(amount: Decimal, unit: str) -> str:
    """A requested or granted amount as people write it: ``$0.50``, ``$0.125``, ``10,000
    tokens``."""
    if unit == "usd":
        cents = amount.quantize(Decimal("0.01"))
        return f"${cents:,}" if cents == amount else f"${amount.normalize():f}"
    return quantity(amount, unit)


def grant_line(g: Request) -> str:
    """One grant in force, for /budget: what, how much, for whom, by whom, until when."""
    return (
        f"+{amount_text(g.amount, g.unit)} on {g.label} for <@{g.requested_by}>, granted by "
        f"<@{g.decided_by}>, until {reset_text(g.expires_at)}"
    )
