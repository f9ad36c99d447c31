"""Dashboard sign-in links: a token that says which workspace it shows and until when, signed
with HMAC-SHA256, so that any replica with the same secret can check it without a database.

    /usage dashboard (an admin, in chat) or ``quotabot dashboard-link``
        -> https://quotabot.example.com/dashboard?t=v1.<scope and expiry>.<signature>
    opened -> the token checked, kept in an HttpOnly cookie, the URL cleaned of it

A link names one workspace (``slack:T0123``) or, from the command line, every one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from bot.config import Settings

_VERSION = "v1"


class Unauthorized(Exception):
    """No valid sign-in: the message says what to do (never what the token was)."""


@dataclass(frozen=True, slots=True)
class Scope:
    """What a sign-in may see: one workspace of one platform, or everything (None, None)."""

    platform: str | None = None
    workspace: str | None = None

    @property
    def everything(self) -> bool:
        return self.platform is None

    def where(self) -> tuple[tuple[str, str], ...]:
        if self.platform is None or self.workspace is None:
            return ()
        return (("platform", self.platform), ("workspace", self.workspace))

    def describe(self) -> str:
        return "every workspace" if self.everything else f"{self.platform} {self.workspace}"


class Links:
    def __init__(self, secret: bytes, *, ttl: float, base_url: str):
        if len(secret) < 16:
            raise ValueError("a dashboard secret needs at least 16 bytes")
        self._key = secret
        self.ttl = ttl
        self.base_url = base_url.rstrip("/")

    def token(self, scope: Scope, *, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + self.ttl)
        body = {"p": scope.platform, "w": scope.workspace, "e": expires}
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        return f"{_VERSION}.{payload}.{self._sign(payload)}"

    def url(self, scope: Scope) -> str:
        return f"{self.base_url}/dashboard?t={self.token(scope)}"

    def read(self, token: str, *, now: float | None = None) -> tuple[Scope, float]:
        """The scope a token grants and when it expires (Unix seconds). Raises Unauthorized."""
        version, _, rest = token.partition(".")
        payload, _, signature = rest.partition(".")
        if version != _VERSION or not payload or not signature:
            raise Unauthorized("That is not a dashboard link: ask for a new one.")
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise Unauthorized("That dashboard link is not valid here: ask for a new one.")
        try:
            body = json.loads(_unb64(payload))
            expires = float(body["e"])
            scope = Scope(body["p"], body["w"])
        except (ValueError, KeyError, TypeError) as exc:
            raise Unauthorized("That dashboard link is damaged: ask for a new one.") from exc
        if expires <= (time.time() if now is None else now):
            raise Unauthorized(
                "That dashboard link has expired: ask for a new one (/usage dashboard in chat, "
                "or quotabot dashboard-link)."
            )
        return scope, expires

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())


def links_for(settings: Settings) -> Links:
    """Links as configured: QUOTABOT_DASHBOARD_SECRET, else a random secret kept in the data
    directory (made on first use, readable by this user only)."""
    web = settings.web
    base = web.public_url or f"http://{web.host}:{web.port}"
    if web.dashboard_secret is not None:
        secret = web.dashboard_secret.get_secret_value().encode()
    else:
        secret = _kept_secret(settings.store.data_dir / "dashboard-secret")
    return Links(secret, ttl=web.dashboard_link_ttl, base_url=base)


def _kept_secret(path: Path) -> bytes:
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as f:
        f.write(fresh.hex())
    return fresh


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
