"""Fuzzing ``POST /slack/events`` and ``POST /discord/interactions`` on a running server.

One real aiohttp server carries both endpoints, as ``quotabot serve`` does, with the sandbox as
the provider and the fake Slack and Discord APIs behind them. Hypothesis posts, over real
sockets, three families of requests to each endpoint:

1. unsigned or mis-signed bodies of arbitrary bytes and headers: 401 (or 400);
2. bodies over ``bot.web.MAX_BODY``, signed or not, with a length or chunked: 413;
3. correctly signed bodies that are malformed (arbitrary JSON, real payloads with fields
   missing or of the wrong type, unknown event and interaction types, bad form encodings,
   huge strings, unicode): never a 5xx; the request is logged and acknowledged.

After every example: the sandbox has served nothing, neither chat API was called (Slack's
``auth.test`` and ``users.info``, reads that bolt and ``/budget`` make, aside), and no table
holds a row. After each run a good request is still answered.

CI runs a fixed number of examples (150 unsigned, 8 oversized and 300 signed per endpoint),
derandomized so that a run is reproducible: about 40 s in all. (The same command draws the
same examples; Hypothesis also draws on constants from the modules loaded, so this file alone
and the whole suite draw different ones.) To search longer, with fresh random examples:

    QUOTABOT_FUZZ_SCALE=50 .venv/bin/pytest tests/adapters/test_fuzz_http.py

(the number of examples of each test is multiplied by it). A failing example is printed by
Hypothesis; it then belongs in ``test_regressions_found_by_fuzzing`` below.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey
from sqlalchemy import func, select

from adapters.discord import CommandRunner, DiscordREST, InteractionsConfig, InteractionsEndpoint
from adapters.slack import SlackAdapter, SlackConfig
from bot.app import App, open_app
from bot.chat.commands import Commands
from bot.config import load_settings
from bot.sandbox import SandboxConfig, SandboxServer
from bot.store.events import EventLog
from bot.store.schema import Base
from bot.web import MAX_BODY, WebServer
from fakes import slack_events as ev
from fakes.discord_api import (
    APPLICATION_ID,
    GUILD,
    FakeDiscordAPI,
    Signer,
    interaction,
    option,
)
from fakes.slack_api import DEFAULT_TOKEN, FakeSlackAPI
from fakes.slack_workspace import DEFAULT_CHANNEL

SECRET = "fuzz-signing-secret-0123456789abcdef"
SCALE = max(1, int(os.environ.get("QUOTABOT_FUZZ_SCALE", "1")))
"""Read at import: the autouse ``clean_environ`` fixture removes QUOTABOT_* from each test."""
Headers = dict[str, str | bytes]
SIGNER = Signer()
"""Discord's key pair for these tests: the strategies sign with it too."""
SLACK_READS = {"auth.test", "users.info"}
"""Slack calls that change nothing: bolt's ``auth.test``, ``/budget set``'s admin check."""


def fuzz(examples: int) -> settings:
    """Bounded and reproducible in CI; ``QUOTABOT_FUZZ_SCALE`` > 1 searches longer, at random."""
    return settings(
        max_examples=examples * SCALE,
        derandomize=SCALE == 1,
        database=None,
        deadline=None,
        # One server for all examples of a test: that it survives them is the point.
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        print_blob=True,
    )


# -- the server under test ------------------------------------------------------------------


@dataclass
class Rig:
    app: App
    sandbox: SandboxServer
    slack: FakeSlackAPI
    discord: FakeDiscordAPI
    runner: CommandRunner
    adapter: SlackAdapter
    http: httpx.AsyncClient
    base: str
    signer: Signer

    @property
    def slack_url(self) -> str:
        return f"{self.base}/slack/events"

    @property
    def discord_url(self) -> str:
        return f"{self.base}/discord/interactions"

    def sign(self, where: str, body: bytes) -> Headers:
        """The headers Slack or Discord would sign ``body`` with (no Content-Type)."""
        if where == "slack":
            return dict(ev.signed_request(body, SECRET))
        headers: Headers = dict(self.signer.headers(body))
        del headers["Content-Type"]
        return headers

    async def post(
        self, where: str, body: bytes, headers: Headers, *, chunked: bool = False
    ) -> httpx.Response:
        url = self.slack_url if where == "slack" else self.discord_url
        content: Any = body
        if chunked:

            async def pieces() -> AsyncIterator[bytes]:
                for i in range(0, len(body), 65536):
                    yield body[i : i + 65536]

            content = pieces()
        return await self.http.post(url, content=content, headers=headers)

    async def settle(self) -> None:
        """Let whatever a request started (bolt's listeners, Discord's answer tasks) finish."""
        await self.runner.drain()
        for _ in range(100):
            if not self.adapter.tasks and not _listeners():
                break
            await asyncio.sleep(0.01)

    async def rows(self) -> dict[str, int]:
        """Rows per table, of the tables that hold any."""
        counts = {}
        async with self.app.db.session() as s:
            for table in Base.metadata.sorted_tables:
                n = (await s.execute(select(func.count()).select_from(table))).scalar_one()
                if n:
                    counts[table.name] = int(n)
        return counts

    async def assert_untouched(self, what: object) -> None:
        await self.settle()
        slack_calls = [c.method for c in self.slack.calls if c.method not in SLACK_READS]
        assert self.sandbox.stats.total.requests == 0, what
        assert slack_calls == [], what
        assert self.slack.state.messages == {}, what
        assert [(c.method, c.path) for c in self.discord.calls] == [], what
        assert await self.rows() == {}, what

    async def assert_still_answers(self) -> None:
        """A good Slack mention and a good Discord /ask still get their answers."""
        assert (await self.http.get(f"{self.base}/healthz")).status_code == 200
        mention = self.slack.seed_event(ev.app_mention("q1 still there?"))
        assert (await ev.post_event(self.http, self.slack_url, mention, SECRET)).status_code == 200
        ask = interaction("ask", [option("prompt", "q2 still there?")])
        self.discord.acknowledged(ask, {"type": 5, "data": {}})
        response = await self.signer.post(self.http, self.discord_url, ask)
        assert response.json()["type"] == 5
        await self.runner.drain()
        ts = mention["event"]["ts"]
        for _ in range(300):
            texts = self.slack.messages(DEFAULT_CHANNEL, ts)
            if any(t.startswith("Sandbox answer") for t in texts):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError(f"no Slack answer: {texts}")
        (answer,) = self.discord.thread(ask["token"])
        assert answer.content.startswith("Sandbox answer")
        assert self.sandbox.stats.total.requests == 2


def _listeners() -> bool:
    me = asyncio.current_task()
    return any(
        "listener" in repr(t) or "_answer" in repr(t) for t in asyncio.all_tasks() if t is not me
    )


@asynccontextmanager
async def running(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    """Both endpoints on one server, as ``quotabot serve`` has them."""
    signer = SIGNER
    async with (
        SandboxServer(SandboxConfig(rpm=None, tpm=None, rpd=None)) as sandbox,
        FakeSlackAPI(streaming_supported=False) as slack,
        FakeDiscordAPI() as discord,
    ):
        monkeypatch.setenv("OPENAI_BASE_URL", sandbox.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        async with open_app(load_settings()) as app, DiscordREST(base_url=discord.url) as rest:
            commands = Commands(usage=app.usage, budget=app.budget, limits=app.limits)
            adapter = SlackAdapter(
                SlackConfig(bot_token=DEFAULT_TOKEN, signing_secret=SECRET, api_url=slack.url),
                service=app.service,
                commands=commands,
                events=EventLog(app.db),
            )
            runner = CommandRunner(service=app.service, commands=commands, events=EventLog(app.db))
            endpoint = InteractionsEndpoint(
                InteractionsConfig(application_id=APPLICATION_ID, public_key=signer.public_key),
                runner=runner,
                rest=rest,
            )
            server = WebServer([*adapter.routes(), *endpoint.routes()], host="127.0.0.1", port=0)
            await server.start()
            try:
                async with httpx.AsyncClient(timeout=30) as http:
                    yield Rig(
                        app, sandbox, slack, discord, runner, adapter, http, server.url, signer
                    )
            finally:
                await server.aclose()
                await endpoint.aclose()
                await adapter.aclose()


Case = TypeVar("Case")


def fuzz_endpoint(
    monkeypatch: pytest.MonkeyPatch,
    cases: st.SearchStrategy[Case],
    check: Callable[[Rig, Case], Awaitable[None]],
    *,
    examples: int,
) -> None:
    """Start the server once, run ``check`` on each example Hypothesis draws (then assert
    nothing was called or written), and finally ask something good of both endpoints.

    A plain function on an ``asyncio.Runner`` of its own rather than an async test: the one
    server must outlive every example, and be checked once more after the last."""
    with asyncio.Runner() as loop:
        stack = AsyncExitStack()
        rig = loop.run(stack.enter_async_context(running(monkeypatch)))
        try:

            @given(cases)
            @fuzz(examples)
            def one(case: Case) -> None:
                loop.run(check(rig, case))
                loop.run(rig.assert_untouched(case))

            one()
            loop.run(rig.assert_still_answers())
        finally:
            loop.run(stack.aclose())


# -- strategies -----------------------------------------------------------------------------

# What h11 (httpx's HTTP/1.1) lets through in a header value: visible ASCII, space, tab and
# obs-text (bytes 0x80-0xFF), which a server must accept and may decode any way it likes.
_header_value = st.binary(max_size=80).map(
    lambda b: bytes(c for c in b if c == 9 or 32 <= c < 127 or c >= 128).strip(b" \t")
)
_hex = st.text("0123456789abcdef", max_size=130)
_timestamps = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["", "now", "+1", "1e3", "0x10", "١٢٣", "NaN", "-inf"]),
    st.just("NOW"),  # replaced by the current time when sent
    _header_value.map(lambda b: b.decode("latin-1")),
)
_content_types = st.sampled_from(
    [
        None,
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
        "application/x-www-form-urlencoded; charset=utf-16",
    ]
)
_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
_json = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
_huge = st.sampled_from(
    ["x" * 200_000, "🦜" * 50_000, "\u202e" * 1000 + "e\u0301" * 1000, "\x00" * 500]
)
_wrong = st.one_of(
    _json_leaf,
    _huge,
    st.lists(_json_leaf, max_size=3),
    st.dictionaries(st.text(max_size=5), _json_leaf, max_size=3),
)
"""A value of any type, often not the one Slack or Discord would send."""
_bodies = st.one_of(
    st.binary(max_size=2048),
    _json.map(lambda v: json.dumps(v).encode()),
    st.text(max_size=500).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


_good_slack = st.sampled_from(["mention", "dm", "ask"]).map(
    lambda kind: (
        ev.encode_command(ev.slash_command("/ask", "q hi"))
        if kind == "ask"
        else ev.encode_event(
            ev.app_mention("q hi") if kind == "mention" else ev.direct_message("q hi")
        )
    )
)
"""What Slack would send, to be answered if it were signed."""
_good_discord = st.builds(
    lambda: json.dumps(interaction("ask", [option("prompt", "q hi")])).encode()
)


def _now(ts: str) -> str:
    return str(int(time.time())) if ts == "NOW" else ts


# -- Slack ----------------------------------------------------------------------------------

SLACK_HEADERS = ("X-Slack-Request-Timestamp", "X-Slack-Signature")


@st.composite
def _missigned_slack(draw: st.DrawFn) -> tuple[str, bytes, Headers]:
    body = draw(st.one_of(_bodies, _good_slack))
    headers: Headers = {}
    if (ctype := draw(_content_types)) is not None:
        headers["Content-Type"] = ctype
    how = draw(
        st.sampled_from(
            ["none", "random", "wrong-secret", "other-body", "stale", "future", "no-v0"]
        )
    )
    ts = int(time.time())
    if how == "random":
        for name in SLACK_HEADERS:
            if draw(st.booleans()):
                headers[name] = draw(_header_value)
        if draw(st.booleans()):
            headers["X-Slack-Request-Timestamp"] = _now(draw(_timestamps)).strip(" \t").encode()
    elif how == "wrong-secret":
        headers.update(ev.signed_request(body, SECRET + draw(st.text(min_size=1, max_size=5)), ts))
    elif how == "other-body":
        headers.update(
            ev.signed_request(body + draw(st.binary(min_size=1, max_size=5)), SECRET, ts)
        )
    elif how in ("stale", "future"):
        skew = draw(st.integers(301, 10**6)) * (-1 if how == "stale" else 1)
        headers.update(ev.signed_request(body, SECRET, ts + skew))
    elif how == "no-v0":
        signed = ev.signed_request(body, SECRET, ts)
        headers.update(signed, **{"X-Slack-Signature": signed["X-Slack-Signature"][3:]})
    if draw(st.booleans()):
        headers["X-Slack-Retry-Num"] = draw(_header_value)
    return "slack", body, headers


_EVENT_FIELDS = (
    "channel",
    "ts",
    "user",
    "text",
    "thread_ts",
    "channel_type",
    "subtype",
    "bot_id",
    "team",
    "type",
    "blocks",
)
_REQUIRED = ("channel", "ts", "user")


@st.composite
def _bad_slack_event(draw: st.DrawFn) -> bytes:
    """A real event with at least one of channel, ts and user missing, empty or of the wrong
    type (so it cannot be answered), and anything else changed too; or arbitrary JSON, or an
    envelope of an unknown or broken kind."""
    kind = draw(
        st.sampled_from(
            ["mention", "message", "dm", "thread", "envelope", "any-json", "unknown-event"]
        )
    )
    if kind == "any-json":
        return json.dumps(draw(_json)).encode()
    build: dict[str, Callable[[], dict[str, Any]]] = {
        "mention": lambda: ev.app_mention("q hello"),
        "message": lambda: ev.message("q hello"),
        "dm": lambda: ev.direct_message("q hello"),
        "thread": lambda: ev.thread_reply("q hello", thread_ts="1700000000.000100"),
        "envelope": lambda: ev.app_mention("q hello"),
        "unknown-event": lambda: ev.app_mention("q hello"),
    }
    payload = build[kind]()
    event = payload["event"]
    if kind == "unknown-event":
        event["type"] = draw(
            st.text(max_size=20).filter(lambda t: t not in ("app_mention", "message"))
        )
    elif kind == "envelope":
        key = draw(
            st.sampled_from(
                [
                    "type",
                    "event",
                    "team_id",
                    "authorizations",
                    "api_app_id",
                    "token",
                    "challenge",
                    "event_id",
                ]
            )
        )
        if draw(st.booleans()):
            payload.pop(key, None)
        else:
            payload[key] = draw(_wrong)
        if key not in ("event", "type"):  # the event itself must not be answerable either
            event.pop(draw(st.sampled_from(_REQUIRED)))
    else:
        broken = draw(st.sampled_from(_REQUIRED))
        if draw(st.booleans()):
            del event[broken]
        else:
            event[broken] = draw(
                st.one_of(_wrong.filter(lambda v: not isinstance(v, str)), st.just(""))
            )
    for key in draw(st.lists(st.sampled_from(_EVENT_FIELDS), max_size=4)):
        if key in _REQUIRED and kind not in ("unknown-event",):
            continue  # left broken
        if draw(st.booleans()):
            event.pop(key, None)
        else:
            event[key] = draw(_wrong)
    return ev.encode_event(payload)


_COMMAND_FIELDS = (
    "team_id",
    "channel_id",
    "user_id",
    "command",
    "text",
    "trigger_id",
    "response_url",
    "api_app_id",
)


@st.composite
def _bad_slack_form(draw: st.DrawFn) -> bytes:
    """Slash commands without a field they need, unknown commands, ``payload=`` forms of
    interactivity holding anything, and bytes that are no form at all."""
    kind = draw(st.sampled_from(["command", "unknown-command", "payload", "raw"]))
    if kind == "raw":
        return draw(st.binary(max_size=1024))
    if kind == "payload":
        value = draw(st.one_of(st.text(max_size=200), _json.map(json.dumps)))
        return urlencode({"payload": value}).encode()
    form = ev.slash_command(draw(st.sampled_from(["/ask", "/usage", "/budget", "/digest"])), "q hi")
    if kind == "unknown-command":
        form["command"] = "/" + draw(st.text(max_size=20))
    else:
        del form[draw(st.sampled_from(["channel_id", "user_id", "trigger_id", "command"]))]
    for key in draw(st.lists(st.sampled_from(_COMMAND_FIELDS), max_size=4)):
        if key not in form or key == "response_url":
            continue
        form[key] = draw(st.one_of(st.text(max_size=30), _huge))
    body = urlencode(form).encode()
    if draw(st.booleans()):  # percent-escapes that are not, and bytes that are not UTF-8
        body += draw(st.sampled_from([b"&%", b"&text=%zz", b"&text=%ff%fe", b"&=&&==", b"\xff"]))
    return body


async def _missigned(rig: Rig, case: tuple[str, bytes, Headers]) -> None:
    where, body, headers = case
    response = await rig.post(where, body, headers)
    assert response.status_code in (400, 401), (response.status_code, response.text[:300])


async def _oversized(rig: Rig, case: tuple[str, int, bytes, bool, bool, str | None]) -> None:
    where, size, fill, signed, chunked, ctype = case
    body = fill * size
    headers: Headers = rig.sign(where, body) if signed else {}
    if ctype:
        headers["Content-Type"] = ctype
    response = await rig.post(where, body, headers, chunked=chunked)
    assert response.status_code == 413, response.status_code


async def _signed(rig: Rig, case: tuple[str, bytes, Headers]) -> None:
    where, body, headers = case
    response = await rig.post(where, body, {**rig.sign(where, body), **headers})
    assert response.status_code < 500, (response.status_code, response.text[:300])


def _oversized_cases(
    where: str,
) -> st.SearchStrategy[tuple[str, int, bytes, bool, bool, str | None]]:
    return st.tuples(
        st.just(where),
        st.integers(MAX_BODY + 1, MAX_BODY + 300_000),
        st.sampled_from([b"{", b"a", b"\x00", b"%", b'"']),
        st.booleans(),
        st.booleans(),
        _content_types,
    )


def test_slack_refuses_what_slack_did_not_sign(monkeypatch: pytest.MonkeyPatch) -> None:
    fuzz_endpoint(monkeypatch, _missigned_slack(), _missigned, examples=150)


def test_slack_refuses_oversized_bodies(monkeypatch: pytest.MonkeyPatch) -> None:
    fuzz_endpoint(monkeypatch, _oversized_cases("slack"), _oversized, examples=8)


def test_slack_acknowledges_and_ignores_signed_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    cases = st.tuples(
        st.just("slack"),
        st.one_of(_bad_slack_event(), _bad_slack_form(), _bodies),
        st.fixed_dictionaries(
            {},
            optional={
                "Content-Type": _content_types.filter(bool),
                "X-Slack-Retry-Num": st.just("1"),
            },
        ),
    )
    fuzz_endpoint(monkeypatch, cases, _signed, examples=300)


# -- Discord --------------------------------------------------------------------------------


@st.composite
def _missigned_discord(draw: st.DrawFn) -> tuple[str, bytes, Headers]:
    body = draw(st.one_of(_bodies, _good_discord))
    headers: Headers = {}
    if (ctype := draw(_content_types)) is not None:
        headers["Content-Type"] = ctype
    ts = time.time()
    how = draw(
        st.sampled_from(
            ["none", "random", "other-key", "other-body", "stale", "future", "other-timestamp"]
        )
    )
    signed = SIGNER.headers(body, timestamp=ts)
    del signed["Content-Type"]
    if how == "random":
        if draw(st.booleans()):
            headers["X-Signature-Ed25519"] = draw(st.one_of(_hex, _header_value))
        if draw(st.booleans()):
            headers["X-Signature-Timestamp"] = _now(draw(_timestamps)).strip(" \t").encode()
    elif how == "other-key":
        other = SigningKey.generate().sign(signed["X-Signature-Timestamp"].encode() + body)
        headers.update(signed, **{"X-Signature-Ed25519": other.signature.hex()})
    elif how == "other-body":
        extra = draw(st.binary(min_size=1, max_size=5))
        headers.update(SIGNER.headers(body + extra, timestamp=ts))
        headers.pop("Content-Type")
    elif how in ("stale", "future"):
        skew = draw(st.integers(301, 10**6)) * (-1 if how == "stale" else 1)
        headers.update(SIGNER.headers(body, timestamp=ts + skew))
        headers.pop("Content-Type")
    elif how == "other-timestamp":
        headers.update(signed, **{"X-Signature-Timestamp": str(int(ts) + draw(st.integers(1, 5)))})
    return "discord", body, headers


_ids = st.one_of(
    st.sampled_from(["9" * 30, "9" * 400, "-1", "", " 1", "1_000", "١٢٣", "0x10"]),
    st.text(max_size=25).filter(lambda t: not (t.isascii() and t.isdigit())),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
"""What an interaction's ``id`` is not: a snowflake, ASCII digits that fit in 64 bits."""


def _drop_or(
    draw: st.DrawFn, target: dict[str, Any], key: str, values: st.SearchStrategy[Any]
) -> None:
    if draw(st.booleans()):
        target.pop(key, None)
    else:
        target[key] = draw(values)


@st.composite
def _bad_discord_interaction(draw: st.DrawFn) -> bytes:
    """A real interaction with at least one thing it cannot be answered without broken (its
    token, id, user, channel or command data), and other fields changed too; or arbitrary JSON,
    or an interaction of a type quotabot does not handle."""
    kind = draw(
        st.sampled_from(
            ["token", "id", "user", "channel", "data", "options", "unknown", "type", "any"]
        )
    )
    if kind == "any":
        return json.dumps(draw(_json)).encode()
    name = draw(st.sampled_from(["ask", "usage", "budget", "digest"]))
    payload = interaction(
        name,
        [option("prompt", "q hello")] if name == "ask" else [],
        guild=draw(st.sampled_from([GUILD, None])),
    )
    if kind == "token":
        _drop_or(
            draw,
            payload,
            "token",
            st.one_of(st.just(""), _wrong.filter(lambda v: not isinstance(v, str))),
        )
    elif kind == "id":
        _drop_or(draw, payload, "id", _ids)
    elif kind == "user":
        payload.pop("user", None)
        if "member" in payload and draw(st.booleans()):
            _drop_or(draw, payload["member"], "user", st.one_of(_wrong, st.just({"name": "x"})))
        else:
            payload.pop("member", None)
    elif kind == "channel":
        payload.pop("channel_id")
        _drop_or(
            draw,
            payload,
            "channel",
            st.one_of(st.just({}), _wrong.filter(lambda v: not isinstance(v, dict))),
        )
    elif kind == "data":
        if draw(st.booleans()):
            _drop_or(draw, payload, "data", _wrong.filter(lambda v: not isinstance(v, dict)))
        else:
            _drop_or(draw, payload["data"], "name", _wrong.filter(lambda v: not isinstance(v, str)))
    elif kind == "options":
        payload["data"]["options"] = draw(
            st.one_of(
                _wrong.filter(lambda v: not isinstance(v, list) and bool(v)),
                st.lists(_wrong.filter(lambda v: not isinstance(v, dict)), min_size=1, max_size=3),
                st.lists(
                    st.fixed_dictionaries(
                        {
                            "name": _wrong,
                            "value": st.one_of(
                                st.none(),
                                st.lists(_json_leaf),
                                st.dictionaries(st.text(max_size=3), _json_leaf),
                            ),
                        },
                        optional={"type": st.sampled_from([1, 2, 3, "1", None])},
                    ),
                    min_size=1,
                    max_size=3,
                ),
            )
        )
    elif kind == "unknown":
        payload["data"]["name"] = draw(st.text(max_size=30).filter(lambda t: t not in _KNOWN))
    elif kind == "type":
        payload["type"] = draw(
            st.one_of(
                st.sampled_from([0, 3, 5, 6, 99, -1, "2", "1", None, [], {}]),
                st.text(max_size=10),
            )
        )
    for key in draw(st.lists(st.sampled_from(_INTERACTION_FIELDS), max_size=3)):
        if key not in (
            "locale",
            "guild_id",
            "app_permissions",
            "version",
            "context",
            "entitlements",
        ):
            continue
        _drop_or(draw, payload, key, _wrong)
    if "member" in payload and isinstance(payload["member"], dict) and draw(st.booleans()):
        for key in ("roles", "permissions"):
            if draw(st.booleans()):
                payload["member"][key] = draw(_wrong)
    return json.dumps(payload).encode()


_KNOWN = {"ask", "usage", "budget", "digest", "budget set", "budget show"}
_INTERACTION_FIELDS = (
    "locale",
    "guild_id",
    "app_permissions",
    "version",
    "context",
    "entitlements",
)


def test_discord_refuses_what_discord_did_not_sign(monkeypatch: pytest.MonkeyPatch) -> None:
    fuzz_endpoint(monkeypatch, _missigned_discord(), _missigned, examples=150)


def test_discord_refuses_oversized_bodies(monkeypatch: pytest.MonkeyPatch) -> None:
    fuzz_endpoint(monkeypatch, _oversized_cases("discord"), _oversized, examples=8)


def test_discord_acknowledges_and_ignores_signed_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    cases = st.tuples(
        st.just("discord"),
        st.one_of(_bad_discord_interaction(), _bodies),
        st.fixed_dictionaries({}, optional={"Content-Type": _content_types.filter(bool)}),
    )
    fuzz_endpoint(monkeypatch, cases, _signed, examples=300)


# -- what fuzzing found, kept as plain tests -------------------------------------------------


def test_regressions_found_by_fuzzing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each of these once got a 500, or was answered (a write and a provider call)."""
    odd_id = [interaction("ask", [option("prompt", "q hi")]) for _ in range(3)]
    for payload, value in zip(odd_id, ["9" * 400, "1_000", "١٢٣"], strict=True):
        payload["id"] = value
    cases: list[tuple[str, bytes, Headers]] = [
        ("slack", b"\x80", {}),  # not UTF-8: bolt parsed it before checking the signature
        ("slack", b"{", {"Content-Type": "application/json"}),
        ("slack", b"[1]", {"Content-Type": "application/json"}),
        ("slack", ev.encode_event({**ev.app_mention("q hi"), "event": None}), {}),  # bolt's 500
        ("slack", ev.encode_event({**ev.app_mention("q hi"), "event": "x"}), {}),
        ("slack", b"command=%2Fask&text=\x00", {}),  # /ask without user_id, before its ack
        ("slack", b"command=%2Fusage&user_id=U1", {}),  # no channel_id, after the ack
        ("slack", ev.encode_event(_without(ev.app_mention("q hi"), "ts")), {}),
        ("slack", ev.encode_event(_with(ev.app_mention("q hi"), "user", 7)), {}),
        ("slack", ev.encode_event(_with(ev.direct_message("q hi"), "text", ["x"])), {}),
        *[("discord", json.dumps(p).encode(), {}) for p in odd_id],
    ]
    with asyncio.Runner() as loop:
        stack = AsyncExitStack()
        rig = loop.run(stack.enter_async_context(running(monkeypatch)))
        try:
            for case in cases:
                loop.run(_signed(rig, case))
                loop.run(rig.assert_untouched(case))
            unsigned = ("slack", b"{}", {"X-Slack-Request-Timestamp": "abc"})
            loop.run(_missigned(rig, unsigned))  # int("abc") in slack-sdk's verifier
            loop.run(rig.assert_still_answers())
        finally:
            loop.run(stack.aclose())


def _without(payload: dict[str, Any], key: str) -> dict[str, Any]:
    del payload["event"][key]
    return payload


def _with(payload: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    payload["event"][key] = value
    return payload
