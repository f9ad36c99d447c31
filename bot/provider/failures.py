"""Failed calls -> :mod:`bot.errors`, with messages that tell an operator what to do.

Bodies come in OpenAI's ``{"error": {...}}`` shape and in those of its imitators (vLLM's
top-level fields with an int code, Ollama's plain-string error, FastAPI's ``detail``), or not
as JSON at all (a proxy's HTML 502 page); each yields a usable message.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from bot.errors import (
    AuthenticationFailed,
    BadRequest,
    ModelNotFound,
    ProviderDown,
    ProviderError,
    ProviderTimeout,
    ProviderUnreachable,
    QuotaExhausted,
    RateLimited,
    RequestTooLarge,
    ServerError,
)
from bot.ratelimits import RateLimitInfo, parse_duration

# 429 codes (or types, when the code is null) that mean "out of money", not "slow down":
# waiting does not help, so the budget must not retry them like a rate limit.
QUOTA_CODES = frozenset(
    {
        "insufficient_quota",
        "billing_hard_limit_reached",
        "credit_balance_exhausted",
        "organization_spend_limit_exceeded",
        "spend_limit_exceeded",
        "quota_exceeded",
    }
)

_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")


def sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def snippet(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def describe_body(response: httpx.Response) -> str:
    """Words for a body that carries no error message, e.g. a proxy's HTML 502 page."""
    text = response.text
    content_type = response.headers.get("content-type", "").split(";")[0].strip() or "untyped"
    if not text.strip():
        return "the answer had an empty body"
    if "html" in content_type or text.lstrip().startswith("<"):
        title = _TITLE.search(text)
        shown = snippet(title.group(1) if title else _TAG.sub(" ", text), 100)
        return f'the answer was an HTML page ("{shown}"), probably from a proxy in between'
    try:
        response.json()
    except ValueError:
        return f"the answer was not JSON ({content_type}): {snippet(text)!r}"
    return f"the answer had no error message: {snippet(text)!r}"


def error_fields(response: httpx.Response) -> tuple[str | None, str | None, str | None]:
    """(message, code, type) of an error body; each None when absent."""
    try:
        payload = response.json()
    except ValueError:
        return None, None, None
    if not isinstance(payload, dict):
        return None, None, None
    error = payload.get("error", payload)
    if isinstance(error, str):
        return error or None, None, None
    if not isinstance(error, dict):
        return None, None, None
    message, detail = error.get("message"), error.get("detail")
    if not isinstance(message, str) and isinstance(detail, str):
        message = detail
    elif not isinstance(message, str) and isinstance(detail, list):
        message = "; ".join(str(d.get("msg")) for d in detail if isinstance(d, dict))
    code, kind = error.get("code"), error.get("type")
    return (
        message if isinstance(message, str) and message else None,
        code if isinstance(code, str) and code else None,  # vLLM's int code is just the status
        kind if isinstance(kind, str) and kind else None,
    )


def _limit_kind(kind: str | None, message: str) -> str | None:
    """Which window a 429 is about: OpenAI says so in error.type, others only in the text."""
    if kind in ("requests", "tokens"):
        return kind
    lowered = message.lower()
    if "tokens per" in lowered or "(tpm)" in lowered or "(tpd)" in lowered:
        return "tokens"
    if "requests per" in lowered or "(rpm)" in lowered or "(rpd)" in lowered:
        return "requests"
    return None


def retry_after(headers: httpx.Headers, limits: RateLimitInfo, kind: str | None) -> float | None:
    """The server's hint in seconds: retry-after-ms, then retry-after (seconds or an HTTP date),
    then the reset of the window the 429 is about (the later of both when unknown)."""
    ms = headers.get("retry-after-ms")
    if ms is not None and (value := parse_duration(ms)) is not None:
        return value / 1000
    after = headers.get("retry-after")
    if after is not None:
        if (value := parse_duration(after)) is not None:
            return value
        try:
            when = email.utils.parsedate_to_datetime(after)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
    if kind == "requests" and limits.reset_requests is not None:
        return limits.reset_requests
    if kind == "tokens" and limits.reset_tokens is not None:
        return limits.reset_tokens
    resets = [r for r in (limits.reset_requests, limits.reset_tokens) if r is not None]
    return max(resets) if resets else None


def status_cause(response: httpx.Response) -> httpx.HTTPStatusError:
    """The httpx error for a failed answer, raised ``from`` so logs keep request and response."""
    return httpx.HTTPStatusError(
        f"{response.status_code} {response.reason_phrase} for {response.request.url}",
        request=response.request,
        response=response,
    )


@dataclass(frozen=True, slots=True)
class ErrorMapper:
    """Knows where the provider is and how the client is set up, to word errors helpfully."""

    where: str
    has_key: bool
    timeout: float
    connect_timeout: float
    key_name: str = "OPENAI_API_KEY"
    """Where the key comes from: what an operator is asked to set or check."""
    not_found: str = (
        "Check the model name, and that base_url is the API root (it usually ends in /v1)."
    )

    def status(self, response: httpx.Response, *, model: str) -> ProviderError:
        """The error for a non-2xx answer; it carries ``rate_limits`` from the headers."""
        status = response.status_code
        request_id = response.headers.get("x-request-id")
        limits = RateLimitInfo.from_headers(response.headers)
        server_message, code, kind = error_fields(response)
        code = code or kind
        detail = sentence(server_message or describe_body(response))
        at = f"The provider at {self.where}"

        exc: ProviderError
        if status == 429 and (code in QUOTA_CODES or kind in QUOTA_CODES):
            exc = QuotaExhausted(
                f"{at} says the account is out of quota or over its spending limit "
                f"(429 {code}): {detail} Check the plan and billing; waiting will not help.",
                status=status,
                code=code,
                request_id=request_id,
            )
        elif status == 429 and (server_message or "").lower().startswith("request too large"):
            exc = RequestTooLarge(
                f"{at} says this request alone exceeds the rate limit (429): {detail} "
                "Shorten the prompt or lower max_tokens; retrying will not help.",
                status=status,
                code=code,
                request_id=request_id,
            )
        elif status == 429:
            wait = retry_after(response.headers, limits, _limit_kind(kind, server_message or ""))
            hint = "" if wait is None else f" It asks to wait {wait:g}s."
            exc = RateLimited(
                f"{at} is rate limiting this account (429): {detail}{hint}",
                retry_after=wait,
                status=status,
                code=code,
                request_id=request_id,
            )
        else:
            cls, message = self._other_status(response, detail, model=model)
            exc = cls(message, status=status, code=code, request_id=request_id)
        # The budgets read the limits to learn the real ones; messages name the model.
        exc.rate_limits = limits
        exc.model = model
        return exc

    def _other_status(
        self, response: httpx.Response, detail: str, *, model: str
    ) -> tuple[type[ProviderError], str]:
        status = response.status_code
        at = f"The provider at {self.where}"
        if status in (401, 403) and not self.has_key:
            return AuthenticationFailed, (
                f"{at} wants an API key ({status}) and none is configured: {detail} "
                f"Set {self.key_name}."
            )
        if status == 401:
            return AuthenticationFailed, (
                f"{at} refused the API key (401): {detail} Check {self.key_name}."
            )
        if status == 403:
            return AuthenticationFailed, (
                f"{at} refused access (403): {detail} Check {self.key_name} and what the "
                "account may use."
            )
        if status == 404:
            return ModelNotFound, (
                f"{at} does not serve model {model!r} at {response.request.url.path} (404): "
                f"{detail} {self.not_found}"
            )
        if status in (400, 409, 413, 422):
            return BadRequest, f"{at} rejected the request for {model} ({status}): {detail}"
        if status >= 500:
            return ServerError, (
                f"{at} failed ({status}): {detail} The fault is on the provider's side."
            )
        location = response.headers.get("location")
        moved = f" It points to {location}: set base_url to that." if location else ""
        return ProviderError, f"{at} answered {status} {response.reason_phrase}: {detail}{moved}"

    def transport(self, exc: httpx.RequestError) -> ProviderError:
        """The error for a call that got no (complete) answer."""
        at = f"the provider at {self.where}"
        why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if isinstance(exc, httpx.ConnectTimeout):
            return ProviderTimeout(f"Could not connect to {at} within {self.connect_timeout:g}s.")
        if isinstance(exc, httpx.PoolTimeout):
            return ProviderTimeout(
                f"No free connection to {at} within {self.timeout:g}s: too many calls in flight."
            )
        if isinstance(exc, httpx.WriteTimeout):
            return ProviderTimeout(f"Sending the request to {at} took over {self.timeout:g}s.")
        if isinstance(exc, httpx.TimeoutException):
            return ProviderTimeout(
                f"The provider at {self.where} sent nothing for {self.timeout:g}s."
            )
        if isinstance(exc, httpx.ConnectError):
            return ProviderDown(
                f"Could not connect to {at} ({why}). Check base_url and that the server is up."
            )
        if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
            return ProviderUnreachable(
                f"The connection to {at} broke before the answer was complete ({why})."
            )
        if isinstance(exc, httpx.TransportError):
            return ProviderUnreachable(f"Could not reach {at} ({why}).")
        return ProviderError(f"The call to {at} failed ({why}).")

    def bad_body(self, response: httpx.Response, why: str) -> ProviderError:
        """The error for a 2xx answer that is not what an OpenAI-compatible API sends."""
        return ProviderError(
            f"The provider at {self.where} answered {response.status_code} but {why}; "
            "is base_url an OpenAI-compatible API?",
            status=response.status_code,
            request_id=response.headers.get("x-request-id"),
        )
