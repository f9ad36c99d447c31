"""Downloads from links in payloads: only from the platform's file hosts, redirects checked
one by one, sizes checked before reading. A real local server plays the file host."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from aiohttp import web

from bot.downloads import MAX_REDIRECTS, FileHosts, download
from bot.errors import AudioDownloadFailed, AudioTooLarge

DISCORD = FileHosts.of("Discord", ("cdn.discordapp.com", "media.discordapp.net"))


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://cdn.discordapp.com/attachments/1/2/memo.ogg?ex=1&hm=2", True),
        ("https://media.discordapp.net/attachments/1/2/memo.ogg", True),
        ("https://CDN.discordapp.com:443/attachments/1/2/memo.ogg", True),
        ("http://cdn.discordapp.com/attachments/1/2/memo.ogg", False),  # not TLS
        ("https://cdn.discordapp.com:8443/attachments/1/2/memo.ogg", False),
        ("https://cdn.discordapp.com.evil.example/memo.ogg", False),
        ("https://evil.example/cdn.discordapp.com/memo.ogg", False),
        ("https://discord.com/api/v10/users/@me", False),
        ("https://127.0.0.1/memo.ogg", False),
        ("https://[::1]/memo.ogg", False),
        ("file:///etc/passwd", False),
    ],
)
def test_only_the_platforms_file_hosts_over_https(url: str, allowed: bool) -> None:
    assert DISCORD.allows(httpx.URL(url)) is allowed


def test_the_configured_api_urls_origin_is_allowed_as_it_is() -> None:
    hosts = FileHosts.of("Discord", ("cdn.discordapp.com",), api_url="http://127.0.0.1:8123/api")
    assert hosts.allows(httpx.URL("http://127.0.0.1:8123/attachments/1/2/a.ogg"))
    assert not hosts.allows(httpx.URL("http://127.0.0.1:8124/attachments/1/2/a.ogg"))
    assert not hosts.allows(httpx.URL("http://localhost:8123/attachments/1/2/a.ogg"))
    assert hosts.allows(httpx.URL("https://cdn.discordapp.com/attachments/1/2/a.ogg"))


Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]


def answer(**kw: Any) -> Answer:
    async def respond(request: web.Request) -> web.StreamResponse:
        return web.Response(**kw)

    return respond


class Host:
    """A file host on 127.0.0.1 whose answers the test picks, by path."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.seen: list[tuple[str, str | None]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.path, request.headers.get("Authorization")))
        return await self.answers.get(request.path, answer(status=404))(request)


@pytest.fixture
async def host() -> AsyncIterator[Host]:
    found = Host()
    app = web.Application()
    app.router.add_get("/{tail:.*}", found.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    found.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield found
    await runner.cleanup()


async def fetch(host: Host, path: str, *, limit: int = 1000) -> bytes:
    into = io.BytesIO()
    hosts = FileHosts.of("Slack", ("files.slack.com",), api_url=host.url)
    async with httpx.AsyncClient() as http:
        size = await download(
            http,
            host.url + path,
            into,
            name="memo.ogg",
            hosts=hosts,
            limit=limit,
            headers={"Authorization": "Bearer xoxb-1"},
        )
    assert size == len(into.getvalue())
    return into.getvalue()


async def test_a_redirect_on_the_file_host_is_followed_with_the_token(host: Host) -> None:
    host.answers["/a"] = answer(status=302, headers={"Location": "/b"})
    host.answers["/b"] = answer(body=b"OggS audio", content_type="audio/ogg")
    assert await fetch(host, "/a") == b"OggS audio"
    assert host.seen == [("/a", "Bearer xoxb-1"), ("/b", "Bearer xoxb-1")]


async def test_a_redirect_off_the_file_hosts_is_not_followed(host: Host) -> None:
    host.answers["/a"] = answer(
        status=307, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
    )
    with pytest.raises(AudioDownloadFailed, match="redirected away from Slack's file hosts"):
        await fetch(host, "/a")
    assert host.seen == [("/a", "Bearer xoxb-1")]


async def test_redirects_are_counted(host: Host) -> None:
    host.answers["/a"] = answer(status=302, headers={"Location": "/a"})
    with pytest.raises(AudioDownloadFailed, match=f"more than {MAX_REDIRECTS} redirects"):
        await fetch(host, "/a")
    assert len(host.seen) == MAX_REDIRECTS + 1


async def test_a_link_off_the_file_hosts_is_not_requested(
    host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    hosts = FileHosts.of("Discord", ("cdn.discordapp.com",))
    async with httpx.AsyncClient() as http:
        with pytest.raises(AudioDownloadFailed) as refused:
            await download(
                http, host.url + "/secret-name.ogg", io.BytesIO(), name="x", hosts=hosts, limit=9
            )
    assert "its link does not lead to Discord's file hosts" in str(refused.value)
    assert host.seen == []
    (line,) = caplog.messages
    assert host.url in line and "secret-name" not in line  # where, not what


async def test_a_content_length_over_the_limit_is_refused_before_reading(host: Host) -> None:
    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "audio/ogg", "Content-Length": "5000"}
        )
        await response.prepare(request)
        for _ in range(50):
            await response.write(b"x" * 100)
        return response

    host.answers["/big"] = big
    with pytest.raises(AudioTooLarge) as refused:
        await fetch(host, "/big")
    assert refused.value.size == 5000  # what it said: a body read to the limit stops at 1100


async def test_a_body_is_cut_off_at_the_limit(host: Host) -> None:
    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "audio/ogg"})
        await response.prepare(request)
        for _ in range(100):
            await response.write(b"x" * 100)
        return response

    host.answers["/endless"] = endless
    with pytest.raises(AudioTooLarge) as refused:
        await fetch(host, "/endless")
    assert 1000 < refused.value.size <= 1100


@pytest.mark.parametrize(
    ("given", "why"),
    [
        (answer(status=404), "HTTP 404"),
        (answer(text="<html>sign in</html>", content_type="text/html"), "a web page"),
        (
            answer(body=b"\x1f\x8b", headers={"Content-Encoding": "gzip"}),
            "it came compressed",
        ),
    ],
)
async def test_answers_that_are_not_the_file(host: Host, given: Answer, why: str) -> None:
    host.answers["/f"] = given
    with pytest.raises(AudioDownloadFailed, match=why):
        await fetch(host, "/f")
