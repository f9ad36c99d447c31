"""Slack's request signature, checked on the raw bytes before anything parses them.

    X-Slack-Signature: v0=<hex HMAC-SHA256 of b"v0:" + timestamp + b":" + body>

slack-sdk's ``SignatureVerifier`` (which bolt uses) decodes the body as UTF-8 and the timestamp
with ``int()`` before comparing, so a body that is not UTF-8 or a timestamp like ``abc`` raises
instead of failing the check; and bolt parses the body as JSON or a form *before* verifying it.
Unsigned garbage then got a 500 (found by fuzzing, tests/adapters/test_fuzz_http.py).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

WINDOW = 300.0
"""Seconds a signed request stays acceptable, as Slack documents (older ones are replays)."""
MAX_DIGITS = 12


def verified(
    secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None
) -> bool:
    """Whether ``body`` carries a valid signature made with ``secret`` in the last 5 minutes."""
    timestamp = headers.get("X-Slack-Request-Timestamp", "")
    signature = headers.get("X-Slack-Signature", "")
    # int() would also take " 1", "1_0" and other scripts' digits: Slack sends ASCII digits,
    # ten of them until the year 2286. 309 digits overflowed the float subtraction (a 500).
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= MAX_DIGITS):
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > WINDOW:
        return False
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    # Bytes, not str: compare_digest refuses str with non-ASCII characters (raising).
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "surrogateescape"))
