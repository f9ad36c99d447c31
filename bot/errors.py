"""Every error quotabot raises on purpose, in one tree.

    QuotabotError
    ├── ConfigError            settings that cannot work (bad TOML, a secret in a file, ...)
    ├── RequestRejected        refused before any provider call; the message is for the user
    │   ├── PromptTooLong      does not fit the model's context window
    │   ├── ChannelDisabled    the bot is switched off in this channel
    │   ├── BudgetExceeded     a daily or monthly cap has no room; says when it resets
    │   │   └── AudioOverBudget    the same, for a recording: with its length and cost
    │   ├── TooLargeForLimit   needs more than a per-minute limit holds: can never be sent
    │   ├── QueueFull          too many requests already wait for this model
    │   ├── WaitTooLong        the queue would outlast the request's deadline
    │   ├── NotAChatModel      a transcription model asked to answer a question
    │   ├── ModelNotAllowed    not on this workspace's or channel's list of models
    │   ├── UnpricedModel      no price, where a spend cap must count it
    │   └── AudioRejected      a file that cannot be transcribed
    │       ├── AudioTooLarge      over the provider's 25 MB
    │       ├── AudioUnsupported   not a format the transcription endpoint takes
    │       ├── AudioUnreadable    a known format whose length cannot be measured
    │       └── AudioDownloadFailed  the chat platform would not hand the file over
    │   └── ImageRejected      an image that cannot be shown to the model
    │       ├── NoVision           the model does not see images: names those that do
    │       ├── ImageTooLarge      over the provider's 20 MB
    │       ├── ImageUnsupported   not png, jpeg, gif or webp (or not an image at all)
    │       └── ImageDownloadFailed  the chat platform would not hand the file over
    ├── ProviderError          the provider answered with an error, or did not answer
    │   ├── RateLimited        429 rate_limit_exceeded; carries the server's retry hint
    │   ├── QuotaExhausted     429 insufficient_quota and the spend/credit codes that mean the same
    │   ├── RequestTooLarge    429 "Request too large": bigger than the TPM limit itself, never fits
    │   ├── AuthenticationFailed  401/403
    │   ├── BadRequest         400 (and 413/422)
    │   ├── ModelNotFound      404
    │   ├── ServerError        5xx
    │   ├── ProviderTimeout    no answer in time
    │   └── ProviderUnreachable  connection dropped before the answer was complete
    │       └── ProviderDown     no connection at all (refused, no such host): never sent
    ├── StoreError             the usage database failed
    │   └── RowRejected        it refused the data itself (NUL byte, too long): never retried
    └── DigestError            a digest cannot be posted (platform not configured, bad channel)

Provider errors are raised from the httpx error or the HTTP answer that caused them
(``raise ... from exc``), so the original stays visible in tracebacks and logs.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from bot.budget.limits import reset_text

if TYPE_CHECKING:
    from bot.ratelimits import RateLimitInfo


class QuotabotError(Exception):
    """Base class: catch this to catch everything quotabot raises on purpose."""


class ConfigError(QuotabotError):
    pass


class RequestRejected(QuotabotError):
    """Refused before the provider was called; ``str(exc)`` is shown to the user."""


class PromptTooLong(RequestRejected):
    def __init__(self, *, model: str, prompt_tokens: int, max_tokens: int, context_window: int):
        self.model = model
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.context_window = context_window
        self.excess = prompt_tokens + max_tokens - context_window
        super().__init__(
            f"This prompt is {prompt_tokens:,} tokens and the answer may take {max_tokens:,} more, "
            f"but {model} holds {context_window:,} tokens in all: shorten the prompt by at least "
            f"{self.excess:,} tokens, or use a model with a larger context window."
        )


class ChannelDisabled(RequestRejected):
    def __init__(self, channel: str):
        self.channel = channel
        super().__init__(f"quotabot is switched off in channel {channel}.")


class BudgetExceeded(RequestRejected):
    def __init__(
        self,
        *,
        label: str,
        used: str,
        limit: str,
        resets_at: datetime,
        now: datetime,
        cap_key: str = "",
        unit: str = "",
    ):
        self.label, self.used, self.limit, self.resets_at = label, used, limit, resets_at
        self.cap_key, self.unit = cap_key, unit
        """Which cap refused (its counter's key) and in what: to ask the admins for more."""
        left = max(0, int((resets_at - now).total_seconds()))
        super().__init__(
            f"This request would go over {label}: {used} of {limit} used. "
            f"It resets at {reset_text(resets_at)} "
            f"(in {_duration(left)})."
        )


class TooLargeForLimit(RequestRejected):
    def __init__(self, *, label: str, needed: int, limit: int, unit: str = "tokens"):
        self.label, self.needed, self.limit = label, needed, limit
        super().__init__(
            f"This request may take {needed:,} {unit} but {label} is {limit:,}, so it can never "
            "be sent: shorten the prompt or ask for a shorter answer."
        )


class QueueFull(RequestRejected):
    def __init__(self, *, model: str, waiting: int):
        self.model, self.waiting = model, waiting
        super().__init__(
            f"{waiting:,} requests are already waiting for {model}. "
            "Please try again in a few minutes."
        )


class WaitTooLong(RequestRejected):
    def __init__(self, *, model: str, wait: float, deadline: float):
        self.model, self.wait, self.deadline = model, wait, deadline
        super().__init__(
            f"{model} is busy: the wait would be about {_duration(round(wait))}, longer than "
            f"quotabot waits ({_duration(round(deadline))}). Please try again later."
        )


class AudioOverBudget(BudgetExceeded):
    def __init__(self, refused: BudgetExceeded, *, seconds: int, cost: str, model: str):
        self.label, self.used, self.limit = refused.label, refused.used, refused.limit
        self.resets_at, self.seconds = refused.resets_at, seconds
        RequestRejected.__init__(
            self,
            f"This recording is {_clock(seconds)} long and may cost up to {cost} with {model}. "
            f"{refused} A shorter recording may fit.",
        )


class NotAChatModel(RequestRejected):
    def __init__(self, model: str):
        self.model = model
        super().__init__(
            f"{model} turns audio into text; it cannot answer questions. "
            "Choose a chat model for this channel."
        )


class ModelNotAllowed(RequestRejected):
    def __init__(self, *, model: str, allowed: frozenset[str], where: str):
        self.model, self.allowed, self.where = model, allowed, where
        choices = ", ".join(sorted(allowed)) or "none"
        super().__init__(
            f"{model} is not allowed in this {where}. Models allowed here: {choices}. "
            f"An admin can change the list with `budget set {where} models <names>`."
        )


class UnpricedModel(RequestRejected):
    def __init__(self, *, model: str, cap: str):
        self.model, self.cap = model, cap
        super().__init__(
            f"{model} has no price, so {cap} cannot count what it spends: it is refused here. "
            f'An admin can declare its price in the config file: [models."{model}"] with '
            'input_price and output_price in USD per 1,000 tokens ("0" for a free, '
            "self-hosted model), or choose a priced model."
        )


class AudioRejected(RequestRejected):
    """A file that cannot be transcribed; nothing was spent."""


class AudioTooLarge(AudioRejected):
    def __init__(self, *, size: int, limit: int):
        self.size, self.limit = size, limit
        super().__init__(
            f"This file is {_megabytes(size)}, but the transcription service takes files up to "
            f"{_megabytes(limit)}. Send a shorter or more compressed recording."
        )


class AudioUnsupported(AudioRejected):
    def __init__(self, *, name: str, formats: str):
        self.name, self.formats = name, formats
        super().__init__(
            f"{name} is not in an audio format quotabot can transcribe. These work: {formats}."
        )


class AudioUnreadable(AudioRejected):
    def __init__(self, *, name: str, formats: str):
        self.name, self.formats = name, formats
        super().__init__(
            f"quotabot could not read the length of {name}: the file seems damaged or empty. "
            f"These formats work: {formats}."
        )


class AudioDownloadFailed(AudioRejected):
    def __init__(self, *, name: str, why: str):
        self.name, self.why = name, why
        super().__init__(
            f"quotabot could not download {name} ({why}). Please post it again; if this "
            "keeps happening, an admin should check quotabot's access to files."
        )


class ImageRejected(RequestRejected):
    """An image that cannot be shown to the model; nothing was spent."""


class NoVision(ImageRejected):
    def __init__(self, *, model: str, vision_models: list[str]):
        self.model, self.vision_models = model, vision_models
        which = ", ".join(vision_models) if vision_models else "none is configured"
        super().__init__(
            f"{model} cannot see images. Ask again with a model that can ({which}), "
            "or without the image."
        )


class ImageTooLarge(ImageRejected):
    def __init__(self, *, name: str, size: int, limit: int):
        self.name, self.size, self.limit = name, size, limit
        super().__init__(
            f"{name} is {_megabytes(size)}, but images may be up to {_megabytes(limit)}. "
            "Send a smaller or more compressed one."
        )


class ImageUnsupported(ImageRejected):
    def __init__(self, *, name: str, formats: str):
        self.name, self.formats = name, formats
        super().__init__(f"{name} is not an image the model can read. These work: {formats}.")


class ImageDownloadFailed(ImageRejected):
    def __init__(self, *, name: str, why: str):
        self.name, self.why = name, why
        super().__init__(
            f"quotabot could not download the image {name} ({why}). Please post it again; if "
            "this keeps happening, an admin should check quotabot's access to files."
        )


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _clock(seconds: int) -> str:
    """3:07 for 187 seconds; 1:02:03 past an hour."""
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _duration(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


class ProviderError(QuotabotError):
    """The provider failed the call. ``status`` is None when no HTTP answer arrived."""

    retryable = False
    rate_limits: RateLimitInfo | None = None
    """What the answer's x-ratelimit-* headers said, when there was an answer."""
    model: str | None = None
    """The model the call was for, when there was an answer."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id


class RateLimited(ProviderError):
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = 429,
        code: str | None = None,
        request_id: str | None = None,
    ):
        super().__init__(message, status=status, code=code, request_id=request_id)
        self.retry_after = retry_after


class QuotaExhausted(ProviderError):
    pass


class RequestTooLarge(ProviderError):
    pass


class AuthenticationFailed(ProviderError):
    pass


class BadRequest(ProviderError):
    pass


class ModelNotFound(ProviderError):
    pass


class ServerError(ProviderError):
    retryable = True


class ProviderTimeout(ProviderError):
    retryable = True


class ProviderUnreachable(ProviderError):
    retryable = True


class ProviderDown(ProviderUnreachable):
    """No connection could be made at all (refused, no such host): the call never reached the
    provider, so it costs no budget, and it is not retried: the user hears at once."""

    retryable = False


class StoreError(QuotabotError):
    pass


class RowRejected(StoreError):
    """The database refused a row's data itself: written again it would fail again, so it is
    set aside rather than retried, and must never hold up the rows written with it."""


class DigestError(QuotabotError):
    """``str(exc)`` says what an admin should change."""
