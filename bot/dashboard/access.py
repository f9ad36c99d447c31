"""Who is asking the dashboard or /api/v1/: nothing is readable without one of

    Authorization: Bearer <QUOTABOT_ADMIN_TOKEN>   every workspace (operators, scripts)
    Authorization: Bearer <a link's token>         what the link names
    the session cookie a link opened               the same, until the link's expiry
    /dashboard?t=<a link's token>                  kept in that cookie; the URL cleaned of it

Tokens are compared in constant time and never logged or shown back.
"""

from __future__ import annotations

import hmac
from email.utils import formatdate

from aiohttp import web

from bot.dashboard.links import Links, Scope, Unauthorized

COOKIE = "quotabot_dashboard"


class Access:
    def __init__(self, links: Links, admin_token: str | None):
        self.links = links
        self.admin_token = admin_token

    def scope(self, request: web.Request) -> Scope:
        """Raises Unauthorized saying what to do."""
        header = request.headers.get("Authorization", "")
        if header:
            kind, _, token = header.partition(" ")
            if kind.lower() != "bearer" or not token.strip():
                raise Unauthorized("Send Authorization: Bearer <token>.")
            token = token.strip()
            if self.admin_token and hmac.compare_digest(token, self.admin_token):
                return Scope()
            return self.links.read(token)[0]
        cookie = request.cookies.get(COOKIE)
        if cookie:
            return self.links.read(cookie)[0]
        raise Unauthorized(
            "Sign in with a dashboard link: /usage dashboard in Slack or Discord (admins), "
            "or quotabot dashboard-link on the server."
        )

    def sign_in(self, token: str, response: web.StreamResponse, *, secure: bool) -> Scope:
        """Keep a link's token in the session cookie (HttpOnly: pages' scripts never see it)."""
        scope, expires = self.links.read(token)
        response.set_cookie(
            COOKIE,
            token,
            expires=_http_date(expires),
            httponly=True,
            samesite="Strict",
            secure=secure,
            path="/",
        )
        return scope


def _http_date(unix: float) -> str:
    return formatdate(unix, usegmt=True)
