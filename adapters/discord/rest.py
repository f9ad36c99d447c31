"""A small Discord REST client for HTTP interactions mode and ``sync-commands``.

Gateway mode uses discord.py's own client; this one serves where discord.py is not running.
It honours Discord's rate limits as Discord asks clients to: before a request, a bucket known
to be empty (``X-RateLimit-Remaining: 0``) is waited out (``X-RateLimit-Reset-After``); a 429
is retried after the ``retry_after`` its JSON body gives (or ``Retry-After``), and a global
429 pauses every request. Buckets are learned from ``X-RateLimit-Bucket`` and kept per route
and top-level resource (webhook, channel, guild), since Discord counts them that way.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from bot.lifecycle import AsyncResource

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://discord.com/api/v10"
USER_AGENT = "DiscordBot (https://github.com/quotabot/quotabot, 0.1) quotabot"
_MAJOR = ("channel_id", "guild_id", "webhook_id", "webhook_token")
_PARAM = re.compile(r"{(\w+)}")


class DiscordAPIError(Exception):
    """Discord refused a call, or could not be reached (``status`` None)."""

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None):
        super().__init__(message)
        self.status, self.code = status, code


@dataclass(slots=True)
class _Bucket:
    remaining: int | None = None
    reset_at: float = 0.0
    lock: asyncio.Lock | None = None


class DiscordREST(AsyncResource):
    """``await rest.request("PATCH", "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
    webhook_id=..., webhook_token=..., json={...})``. Path parameters are named, so that the
    client knows the route and its top-level resource, and each is quoted as one path segment:
    an interaction token comes from a payload, and ``../`` or ``?`` in it must not reach
    another route."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        token: str | None = None,
        max_retries: int = 5,
        timeout: float = 10.0,
    ):
        self.base_url = (base_url or DEFAULT_API_URL).rstrip("/")
        self.max_retries = max_retries
        headers = {"User-Agent": USER_AGENT}
        if token:
            headers["Authorization"] = f"Bot {token}"
        self._http = httpx.AsyncClient(headers=headers, timeout=timeout)
        self._bucket_of_route: dict[str, str] = {}
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._global_until = 0.0
        self.rate_limited = 0
        """429s received so far (each one was waited out and retried)."""

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        files: Sequence[tuple[str, bytes, str]] = (),
        **params: str,
    ) -> Any:
        """The decoded JSON answer (None for 204). Raises DiscordAPIError. ``files``
        (name, content, media type) go as attachments: the body is then multipart, with
        the JSON in ``payload_json`` as Discord asks."""
        body: dict[str, Any] = {"json": json}
        if files:
            payload = dict(json or {})
            payload["attachments"] = [
                {"id": n, "filename": name} for n, (name, _, _) in enumerate(files)
            ]
            body = {
                "data": {"payload_json": _dumps(payload)},
                "files": {
                    f"files[{n}]": (name, content, media)
                    for n, (name, content, media) in enumerate(files)
                },
            }
        route = f"{method} {path}"
        major = ":".join(params[k] for k in _MAJOR if k in params)
        url = self.base_url + _PARAM.sub(lambda m: _segment(params[m.group(1)]), path)
        loop = asyncio.get_running_loop()
        for attempt in range(self.max_retries + 1):
            bucket = self._bucket(route, major)
            assert bucket.lock is not None
            async with bucket.lock:
                await self._wait(bucket)
                try:
                    response = await self._http.request(method, url, **body)
                except httpx.HTTPError as exc:
                    raise DiscordAPIError(f"{route}: {exc!r}") from exc
                bucket = self._learn(route, major, bucket, response, loop.time())
                if response.status_code != 429:
                    return _result(route, response)
                retry_after = self._retry_after(response)
                self.rate_limited += 1
                log.info(
                    "Discord rate limit on %s (attempt %d): retrying in %.2f s",
                    route,
                    attempt + 1,
                    retry_after,
                )
                if _json(response).get("global") or response.headers.get("X-RateLimit-Global"):
                    self._global_until = loop.time() + retry_after
                else:
                    bucket.remaining, bucket.reset_at = 0, loop.time() + retry_after
        raise DiscordAPIError(
            f"{route}: still rate limited after {self.max_retries} retries", status=429
        )

    def _bucket(self, route: str, major: str) -> _Bucket:
        key = (self._bucket_of_route.get(route, route), major)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) > 10_000:  # interaction tokens make endless keys: forget old
                self._buckets.clear()
            bucket = self._buckets[key] = _Bucket(lock=asyncio.Lock())
        return bucket

    async def _wait(self, bucket: _Bucket) -> None:
        loop = asyncio.get_running_loop()
        if (delay := self._global_until - loop.time()) > 0:
            await asyncio.sleep(delay)
        if bucket.remaining == 0 and (delay := bucket.reset_at - loop.time()) > 0:
            log.debug("Discord bucket empty: waiting %.2f s", delay)
            await asyncio.sleep(delay)
            bucket.remaining = None

    def _learn(
        self, route: str, major: str, bucket: _Bucket, response: httpx.Response, now: float
    ) -> _Bucket:
        """Update the route's bucket from the answer's headers; returns that bucket."""
        headers = response.headers
        if name := headers.get("X-RateLimit-Bucket"):
            # Routes that share a bucket share its state from now on (a PATCH and a POST to
            # one webhook, say); the newest answer says how much is left of it.
            self._bucket_of_route[route] = name
            bucket = self._buckets.setdefault((name, major), bucket)
        try:
            if (remaining := headers.get("X-RateLimit-Remaining")) is not None:
                bucket.remaining = int(remaining)
            if (reset_after := headers.get("X-RateLimit-Reset-After")) is not None:
                bucket.reset_at = now + float(reset_after)
        except ValueError:
            log.warning("Discord sent rate-limit headers that are not numbers: %s", dict(headers))
        return bucket

    @staticmethod
    def _retry_after(response: httpx.Response) -> float:
        for value in (_json(response).get("retry_after"), response.headers.get("Retry-After")):
            try:
                if value is not None:
                    return max(0.0, float(value))
            except (TypeError, ValueError):
                continue
        return 1.0


def _segment(value: str) -> str:
    """``value`` as one path segment. Quoting leaves ``.`` and ``..`` as they are, and an
    empty one joins its neighbours: all three would move the path, so none is sent."""
    if value in ("", ".", ".."):
        raise DiscordAPIError(f"{value!r} cannot be a path segment")
    return quote(value, safe="")


def _dumps(payload: Any) -> str:
    return jsonlib.dumps(payload, separators=(",", ":"))


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _result(route: str, response: httpx.Response) -> Any:
    if response.status_code == 204:
        return None
    if response.is_success:
        try:
            return response.json()
        except ValueError as exc:
            raise DiscordAPIError(
                f"{route}: answer is not JSON", status=response.status_code
            ) from exc
    body = _json(response)
    raise DiscordAPIError(
        f"{route}: HTTP {response.status_code}: {body.get('message') or response.text[:200]}",
        status=response.status_code,
        code=body.get("code") if isinstance(body.get("code"), int) else None,
    )
