"""The dashboard and /api/v1/ over HTTP, on the server ``quotabot serve`` runs: sign-in with a
link or the operators' token (and nothing readable without), a link's workspace and no other,
figures equal to ``quotabot usage``'s, CSV and JSON exports, and the page's HTML."""

from __future__ import annotations

import contextlib
import csv
import io
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from bot.app import App, open_app
from bot.config import Settings, load_settings
from bot.dashboard import routes as dashboard
from bot.dashboard.links import Scope, links_for
from bot.models import ChatRequest, Message
from bot.sandbox import SandboxConfig, SandboxServer
from bot.store import Database, UsageRow
from bot.web import WebServer

ADMIN_TOKEN = "operators-token-0123456789abcdef"
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def row(n: int, **kw: object) -> UsageRow:
    fields: dict[str, object] = {
        "call_id": f"call-{n}",
        "request_id": f"req-{n}",
        "created_at": NOW - timedelta(hours=1),
        "platform": "slack",
        "workspace": "T1",
        "channel": "C1",
        "user": "U1",
        "model": "gpt-4o-mini",
        "endpoint": "chat",
        "prompt_tokens": 100,
        "completion_tokens": 50,
        "cost": Decimal("0.0001"),
        "outcome": "ok",
    }
    fields.update(kw)
    return UsageRow(**fields)  # type: ignore[arg-type]


@dataclass
class Site:
    app: App
    settings: Settings
    http: httpx.AsyncClient
    url: str

    def link(self, scope: Scope | None = None) -> str:
        links = links_for(self.settings)
        return links.url(scope or Scope()).replace(links.base_url, self.url)

    @contextlib.asynccontextmanager
    async def signed_in(self, scope: Scope) -> AsyncIterator[httpx.AsyncClient]:
        """A browser-like client that opened a link for ``scope``: it holds the cookie."""
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            response = await client.get(self.link(scope))
            assert response.status_code == 303 and response.headers["location"] == "/dashboard"
            yield client


@pytest.fixture
async def site(monkeypatch: pytest.MonkeyPatch, db_url: str, db: Database) -> AsyncIterator[Site]:
    """On SQLite and on PostgreSQL (days are computed in SQL, differently on each); ``db``
    migrates the database first."""
    monkeypatch.setenv("QUOTABOT_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("QUOTABOT_DATABASE_URL", db_url)
    settings = load_settings()
    async with open_app(settings) as app:
        rows = [
            row(1),
            row(2, user="U2", model="gpt-4o", cost=Decimal("0.0025"), completion_tokens=500),
            row(3, channel='=HYPERLINK("x")', created_at=NOW - timedelta(days=9)),
            row(4, outcome="RateLimited", prompt_tokens=0, completion_tokens=0, cost=Decimal(0)),
            row(5, workspace="T2", user="U9", cost=Decimal("1.5")),
            row(6, platform="discord", workspace="G1", channel="<script>x</script>"),
        ]
        for r in rows:
            assert await app.usage.record(r)
        await app.usage.aclose()  # flushed: every row written
        app.usage.start()
        server = WebServer(dashboard.routes(settings, app), host="127.0.0.1", port=0)
        await server.start()
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            yield Site(app, settings, http, server.url)
        await server.aclose()


async def test_nothing_is_readable_without_signing_in(site: Site) -> None:
    for path in ("/dashboard", "/api/v1/usage", "/api/v1/series", "/api/v1/queue"):
        response = await site.http.get(path)
        assert response.status_code == 401, path
    bad = await site.http.get("/api/v1/usage", headers={"Authorization": "Bearer v1.abc.def"})
    assert bad.status_code == 401 and "not valid" in bad.json()["error"]
    forged = site.link(Scope("slack", "T1")).split("t=")[1][:-3] + "xyz"
    assert (await site.http.get(f"/dashboard?t={forged}")).status_code == 401
    expired = links_for(site.settings).token(Scope(), now=0)
    told = await site.http.get("/api/v1/usage", headers={"Authorization": f"Bearer {expired}"})
    assert told.status_code == 401 and "expired" in told.json()["error"]


async def test_the_operators_token_sees_every_workspace_as_quotabot_usage_counts(
    site: Site,
) -> None:
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    got = (await site.http.get("/api/v1/usage?by=workspace", headers=auth)).json()
    mine = {r["workspace"]: r for r in got["rows"]}
    assert set(mine) == {"T1", "T2", "G1"}
    report = await site.app.usage.report(
        by="workspace", since=NOW - timedelta(days=29, hours=NOW.hour)
    )
    for line in report:
        assert mine[line.key]["calls"] == line.calls
        assert mine[line.key]["cost_usd"] == str(line.cost)
        assert mine[line.key]["prompt_tokens"] == line.prompt_tokens


async def test_a_link_shows_its_workspace_and_no_other(site: Site) -> None:
    async with site.signed_in(Scope("slack", "T1")) as client:
        usage = (await client.get("/api/v1/usage?by=user")).json()
        assert {r["user"] for r in usage["rows"]} == {"U1", "U2"}
        assert usage["filters"] == {"platform": "slack", "workspace": "T1"}
        other = await client.get("/api/v1/usage?workspace=T2")
        assert other.status_code == 403 and "slack T1 only" in other.json()["error"]
        assert (await client.get("/api/v1/budgets?workspace=T2")).status_code == 403
        page = await client.get("/dashboard")
        assert page.status_code == 200
        assert "T2" not in page.text and "U9" not in page.text


async def test_series_per_day_week_and_month_add_up_to_the_totals(site: Site) -> None:
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    totals = (await site.http.get("/api/v1/usage?by=model", headers=auth)).json()["rows"]
    cost = sum(Decimal(r["cost_usd"]) for r in totals)
    providers = (await site.http.get("/api/v1/usage?by=provider", headers=auth)).json()["rows"]
    assert [r["provider"] for r in providers] == ["default"]  # the one provider, the same sum
    assert sum(Decimal(r["cost_usd"]) for r in providers) == cost
    for every in ("day", "week", "month"):
        got = await site.http.get(f"/api/v1/series?every={every}&stack=channel", headers=auth)
        rows = got.json()["rows"]
        assert sum(Decimal(r["cost_usd"]) for r in rows) == cost, every
        assert all(every in r and "channel" in r for r in rows)
    days = (await site.http.get("/api/v1/series?every=day", headers=auth)).json()["rows"]
    assert len({r["day"] for r in days}) == 2  # today (or the hour before) and 9 days ago
    assert (await site.http.get("/api/v1/series?every=year", headers=auth)).status_code == 400
    bad = await site.http.get("/api/v1/usage?since=2026-12-05&until=2026-12-01", headers=auth)
    assert bad.status_code == 400 and "before" in bad.json()["error"]


async def test_exports_are_csv_and_json_and_safe_to_open_in_a_spreadsheet(site: Site) -> None:
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    response = await site.http.get("/api/v1/usage?by=channel&format=csv", headers=auth)
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert rows[0].keys() == {
        "channel",
        "calls",
        "failed",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
    }
    assert '\'=HYPERLINK("x")' in {r["channel"] for r in rows}  # never run as a formula
    failures = (await site.http.get("/api/v1/failures", headers=auth)).json()["rows"]
    assert {"reason": "RateLimited", "model": "gpt-4o-mini", "count": 1} in failures


async def test_budgets_say_what_is_used_and_when_each_resets(site: Site) -> None:
    await site.app.limits.set("workspace:T1", "spend_day", "0.01", by="test")
    await site.app.budget.reload()
    async with site.signed_in(Scope("slack", "T1")) as client:
        (line,) = (await client.get("/api/v1/budgets")).json()["rows"]
    assert line["unit"] == "usd" and Decimal(line["limit"]) == Decimal("0.01")
    tomorrow = (NOW + timedelta(days=1)).date().isoformat()
    assert line["resets_at"].startswith(tomorrow)

    # In the workspace's zone, a week's cap: it resets on Monday at local midnight.
    await site.app.limits.set("workspace:T1", "timezone", "Asia/Kolkata", by="test")
    await site.app.limits.set("workspace:T1", "spend_day", None, by="test")
    await site.app.limits.set("workspace:T1", "tokens_week", "100000", by="test")
    await site.app.budget.reload()
    async with site.signed_in(Scope("slack", "T1")) as client:
        (line,) = (await client.get("/api/v1/budgets")).json()["rows"]
        page = (await client.get("/dashboard")).text
    resets = datetime.fromisoformat(line["resets_at"])
    assert resets.utcoffset() == timedelta(hours=5, minutes=30)
    assert (resets.weekday(), resets.hour, resets.minute) == (0, 0, 0)
    assert line["window"].startswith("Asia/Kolkata week ")
    assert f"{resets:%Y-%m-%d} 00:00 Asia/Kolkata" in page


async def test_the_page_escapes_what_people_named_and_leaks_no_token(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    link = site.link(Scope())
    token = link.split("t=")[1]
    async with httpx.AsyncClient(base_url=site.url, timeout=10) as client:
        await client.get(link)
        page = await client.get("/dashboard?every=week&stack=channel")
    assert page.status_code == 200
    assert "<script>x</script>" not in page.text and "&lt;script&gt;" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<svg" in page.text and "<rect" in page.text
    assert "<td>RateLimited</td><td>gpt-4o-mini</td><td>1</td>" in page.text
    assert token not in page.text
    # quotabot's own logs (the test's HTTP client logs its URLs: not the server's doing).
    ours = [r for r in caplog.records if r.name.split(".")[0] in ("bot", "adapters", "aiohttp")]
    assert all(token not in r.getMessage() for r in ours)


async def test_the_providers_own_figure_sits_beside_quotabots(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With OPENAI_ADMIN_KEY, the sandbox's organization costs endpoint: what it billed,
    including a call quotabot never saw, beside what quotabot recorded."""
    async with SandboxServer(SandboxConfig(rpm=None, tpm=None, rpd=None)) as sandbox:
        monkeypatch.setenv("OPENAI_BASE_URL", sandbox.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_ADMIN_KEY", "sk-admin-test")
        monkeypatch.setenv("QUOTABOT_ADMIN_TOKEN", ADMIN_TOKEN)
        settings = load_settings()
        async with open_app(settings) as app:
            asked = ChatRequest(
                platform="slack",
                workspace="T1",
                channel="C1",
                user="U1",
                model="gpt-4o",
                messages=(Message("user", "how much is this?"),),
            )
            ours = (await app.service.handle(asked)).cost
            async with httpx.AsyncClient() as http:  # another tool, same account
                await http.post(
                    f"{sandbox.base_url}/chat/completions",
                    headers={"Authorization": "Bearer sk-other"},
                    json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
                )
            await app.usage.aclose()
            app.usage.start()
            server = WebServer(dashboard.routes(settings, app), host="127.0.0.1", port=0)
            await server.start()
            auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                (row,) = (await http.get("/api/v1/provider_cost", headers=auth)).json()["rows"]
                links = links_for(settings)
                link = links.url(Scope()).replace(links.base_url, server.url)
                await http.get(link)
                page = await http.get("/dashboard")
                one = links.token(Scope("slack", "T1"))
                mine = {"Authorization": f"Bearer {one}"}
                refused = await http.get("/api/v1/provider_cost", headers=mine)
            await server.aclose()
    assert Decimal(row["quotabot_usd"]) == ours
    assert Decimal(row["provider_usd"]) > Decimal(row["quotabot_usd"])  # the call it missed
    assert "The provider reports" in page.text and "more at the provider" in page.text
    assert refused.status_code == 403


async def test_a_filter_no_stored_name_can_be_is_refused_not_a_database_error(
    site: Site,
) -> None:
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for path, query in (
        ("/api/v1/usage", "model=%00x"),
        ("/api/v1/failures", "user=" + "x" * 5000),
        ("/api/v1/series", "platform=a%00&workspace=T1"),
        ("/api/v1/budgets", "platform=a%00&workspace=T1"),
    ):
        got = await site.http.get(f"{path}?{query}", headers=auth)
        assert got.status_code == 400, (path, query, got.text[:200])
        assert "not a name quotabot stores" in got.json()["error"]
    async with site.signed_in(Scope()) as client:
        page = await client.get("/dashboard?model=%00x")
    assert page.status_code == 400 and "not a name" in page.text
