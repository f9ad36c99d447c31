"""The workspace a test runs in: the IDs the fake Web API and the fake events agree on."""

from __future__ import annotations

import itertools
import secrets
import string
import time
from dataclasses import dataclass

_ALNUM = string.ascii_uppercase + string.digits


@dataclass(frozen=True, kw_only=True)
class SlackWorkspace:
    """One installed app in one workspace. Slack IDs are upper-case letters and digits."""

    team_id: str = "T0QB0TTEST"
    team_domain: str = "quotabot-test"
    team_name: str = "Quotabot Test"
    enterprise_id: str | None = None
    api_app_id: str = "A0QB0TAPP1"
    bot_user_id: str = "U0QB0TB0T1"
    bot_id: str = "B0QB0TB0T1"
    bot_name: str = "quotabot"
    # The deprecated "verification token" Slack still puts in every payload.
    verification_token: str = "Jhj5dZrVaK7ZwHHjRyZWjbDl"


DEFAULT_WORKSPACE = SlackWorkspace()
# The person, channel and DM a test talks in unless it says otherwise.
DEFAULT_USER = "U0QB0TUSER"
DEFAULT_CHANNEL = "C0QB0TCHAN"
DEFAULT_DM = "D0QB0TUSER"

_last_ts_us = 0


def new_ts() -> str:
    """A message timestamp as Slack writes it (``"1700000000.000123"``), strictly increasing
    across both fakes so that ordering by ts is ordering by time."""
    global _last_ts_us
    _last_ts_us = max(time.time_ns() // 1_000, _last_ts_us + 1)
    seconds, micros = divmod(_last_ts_us, 1_000_000)
    return f"{seconds}.{micros:06d}"


def new_id(prefix: str, length: int = 10) -> str:
    """A random Slack-style ID: ``new_id("F")`` -> ``"F07ABC12DE"``."""
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length - len(prefix)))


_counter = itertools.count(1)


def new_trigger_id() -> str:
    """Trigger IDs look like ``"13345224609.738474920.8088930838d88f008e0"``."""
    head = f"{next(_counter)}{secrets.randbelow(10**9)}"
    return f"{head}.{secrets.randbelow(10**9)}.{secrets.token_hex(16)}"


def ts_key(ts: str) -> tuple[int, int]:
    """Sort key for a ts string; exact, unlike ``float(ts)``."""
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros or 0)
