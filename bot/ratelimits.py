"""What a provider's ``x-ratelimit-*`` headers say of the account's limits.

Kept apart from the provider client: errors carry it too (a 429's hint), and it imports
nothing of quotabot's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_UNIT = r"(?:ns|us|µs|μs|ms|h|m|s)"  # "ms" before "m": alternation takes the first that fits
_PLAIN_SECONDS = re.compile(_NUMBER)
_GO_DURATION = re.compile(rf"(?:{_NUMBER}{_UNIT})+")
_GO_PART = re.compile(rf"({_NUMBER})({_UNIT})")
# (multiplier, divisor): dividing keeps "20ms" at exactly 0.02 rather than 20 * 0.001.
_UNIT_SCALE = {
    "h": (3600, 1),
    "m": (60, 1),
    "s": (1, 1),
    "ms": (1, 1_000),
    "us": (1, 1_000_000),
    "µs": (1, 1_000_000),
    "μs": (1, 1_000_000),
    "ns": (1, 1_000_000_000),
}


def parse_duration(value: str) -> float | None:
    """Seconds in OpenAI's reset format (Go durations such as ``"6m0s"``) or plain seconds."""
    text = value.strip()
    if _PLAIN_SECONDS.fullmatch(text):
        seconds = float(text)
    elif _GO_DURATION.fullmatch(text):
        seconds = 0.0
        for number, unit in _GO_PART.findall(text):
            multiplier, divisor = _UNIT_SCALE[unit]
            seconds += float(number) * multiplier / divisor
    else:
        return None
    return seconds if math.isfinite(seconds) else None


def _header_int(value: str | None) -> int | None:
    text = (value or "").strip()
    if not (text.isascii() and text.isdigit()):
        return None
    try:
        return int(text)
    except ValueError:  # more digits than Python converts
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitInfo:
    """What the provider's x-ratelimit-* headers said; every field None when a header is absent
    or malformed (self-hosted servers send none), so the budgets keep their own figures."""

    limit_requests: int | None = None
    limit_tokens: int | None = None
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_requests: float | None = None
    """Seconds until the request window has refilled."""
    reset_tokens: float | None = None
    """Seconds until the token window has refilled."""

    @classmethod
    def from_headers(cls, headers: httpx.Headers | Mapping[str, str]) -> RateLimitInfo:
        # Not httpx.Headers(mapping): that encodes every value and fails on non-ASCII ones.
        h = {name.lower(): value for name, value in headers.items()}

        def reset(name: str) -> float | None:
            value = h.get(name)
            return None if value is None else parse_duration(value)

        return cls(
            limit_requests=_header_int(h.get("x-ratelimit-limit-requests")),
            limit_tokens=_header_int(h.get("x-ratelimit-limit-tokens")),
            remaining_requests=_header_int(h.get("x-ratelimit-remaining-requests")),
            remaining_tokens=_header_int(h.get("x-ratelimit-remaining-tokens")),
            reset_requests=reset("x-ratelimit-reset-requests"),
            reset_tokens=reset("x-ratelimit-reset-tokens"),
        )
