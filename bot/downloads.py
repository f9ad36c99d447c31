"""Files fetched from links that chat payloads carry, kept to the platforms' own file hosts.

    link from a payload -> one of the platform's file hosts? no: refused, nothing fetched
        -> GET (httpx follows no redirect) -> 3xx to one of them? followed, 3 at most
        -> 200, Content-Length within the limit? -> streamed into a file, cut at the limit

A link names whatever host its sender likes, and a file host may redirect anywhere: fetched
as they come, they reach services on quotabot's own network (SSRF). So a link, and every
redirect, must lead to one of the platform's file hosts over HTTPS on the default port, or to
the origin (scheme, host and port) of the configured API URL (``SLACK_API_URL``,
``DISCORD_API_URL``): where the tests' fake APIs serve files, and where a proxy an operator put
in front of the platform would. The bytes go to a file, never all to memory: a process
transcribing many large recordings at once must not hold them all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import IO

import httpx

from bot.errors import AudioDownloadFailed, AudioTooLarge

log = logging.getLogger(__name__)

MAX_REDIRECTS = 3
TIME_LIMIT = 120.0
"""Seconds for a whole download (httpx's timeout is per read: a host sending a byte a minute
would hold one open for weeks). 25 MB in 120 s needs 1.7 Mbit/s."""

Origin = tuple[str, str, int | None]


@dataclass(frozen=True, slots=True)
class FileHosts:
    """Where one platform's files may be downloaded from."""

    platform: str
    """For messages and the log: "Slack", "Discord"."""
    hosts: frozenset[str]
    """Host names, reached over HTTPS on its default port."""
    origin: Origin | None = None
    """The configured API URL's (scheme, host, port), when one is set."""

    @classmethod
    def of(cls, platform: str, hosts: Iterable[str], *, api_url: str | None = None) -> FileHosts:
        origin = _origin(httpx.URL(api_url)) if api_url else None
        return cls(platform, frozenset(h.lower() for h in hosts), origin)

    def allows(self, url: httpx.URL) -> bool:
        if self.origin is not None and _origin(url) == self.origin:
            return True
        return url.scheme == "https" and url.port is None and url.host in self.hosts


async def download(
    http: httpx.AsyncClient,
    url: str,
    into: IO[bytes],
    *,
    name: str,
    hosts: FileHosts,
    limit: int,
    headers: Mapping[str, str] | None = None,
) -> int:
    """Write the file at ``url`` into ``into``; returns its size. ``headers`` (a token) go
    only to the link's own origin. Raises AudioDownloadFailed (a link or a redirect off
    ``hosts``, an error status, a web page, too slow) or AudioTooLarge (a Content-Length over
    ``limit``, or a body that goes past it), having read no further than that."""
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL:
        raise AudioDownloadFailed(name=name, why=f"{hosts.platform} sent no usable link") from None
    if not hosts.allows(target):
        log.warning(
            "%s file not downloaded: its link is on %s, not on %s's file hosts",
            hosts.platform,
            _where(target),
            hosts.platform,
        )
        raise AudioDownloadFailed(
            name=name, why=f"its link does not lead to {hosts.platform}'s file hosts"
        )
    first = _origin(target)
    try:
        async with asyncio.timeout(TIME_LIMIT):
            for _ in range(MAX_REDIRECTS + 1):
                sent = dict(headers or {}) if _origin(target) == first else {}
                # Compressed bodies are not asked for: a small one can inflate without limit.
                sent["Accept-Encoding"] = "identity"
                async with http.stream(
                    "GET", target, headers=sent, follow_redirects=False
                ) as response:
                    if not response.is_redirect:
                        return await _save(response, into, name=name, limit=limit)
                    target = _redirect(response, target, name=name, hosts=hosts)
    except TimeoutError:
        raise AudioDownloadFailed(name=name, why="it took too long") from None
    except httpx.HTTPError as exc:
        raise AudioDownloadFailed(name=name, why=type(exc).__name__) from exc
    raise AudioDownloadFailed(name=name, why=f"more than {MAX_REDIRECTS} redirects")


def _redirect(
    response: httpx.Response, current: httpx.URL, *, name: str, hosts: FileHosts
) -> httpx.URL:
    try:
        target = current.join(response.headers.get("location", ""))
    except httpx.InvalidURL:
        target = None
    if target is None or not hosts.allows(target):
        log.warning(
            "%s file not downloaded: its host redirected it to %s, not one of %s's file hosts",
            hosts.platform,
            _where(target) if target is not None else "an invalid link",
            hosts.platform,
        )
        raise AudioDownloadFailed(
            name=name, why=f"it was redirected away from {hosts.platform}'s file hosts"
        )
    return target


async def _save(response: httpx.Response, into: IO[bytes], *, name: str, limit: int) -> int:
    if response.status_code != 200:
        raise AudioDownloadFailed(name=name, why=f"HTTP {response.status_code}")
    if response.headers.get("content-type", "").startswith("text/html"):
        # Slack answers a download without a valid token with its sign-in page.
        raise AudioDownloadFailed(name=name, why="the platform sent a web page instead")
    if response.headers.get("content-encoding", "identity").lower() != "identity":
        raise AudioDownloadFailed(name=name, why="it came compressed")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise AudioTooLarge(size=int(declared), limit=limit)
    size = 0
    async for chunk in response.aiter_raw():
        size += len(chunk)
        if size > limit:
            raise AudioTooLarge(size=size, limit=limit)
        try:
            into.write(chunk)
        except OSError as exc:
            log.error("could not write a download to %s: %s", getattr(into, "name", "?"), exc)
            raise AudioDownloadFailed(name=name, why="quotabot could not store it") from exc
    return size


def _origin(url: httpx.URL) -> Origin:
    return (url.scheme, url.host, url.port)


def _where(url: httpx.URL) -> str:
    """Scheme, host and port only: paths carry file names, queries carry signatures."""
    return f"{url.scheme}://{url.host}" + (f":{url.port}" if url.port is not None else "")
