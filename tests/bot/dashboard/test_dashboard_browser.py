"""The dashboard in a real browser: Debian's Chromium, driven by Playwright (its Python package,
pointed at the system browser: Playwright's own browser download is not needed). Signed in
with a link, the page's totals are ``quotabot usage --json``'s; a filter changes them; the CSV
export downloads; a screenshot is kept (``QUOTABOT_TEST_ARTIFACTS``, default
``test-artifacts/``).

Without a Chromium at /usr/bin/chromium (or ``QUOTABOT_TEST_CHROMIUM``) this skips, saying so;
under CI it fails instead: the browser test must run there."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from bot.app import open_app
from bot.config import load_settings
from bot.dashboard import routes as dashboard
from bot.dashboard.links import Scope, links_for
from bot.messages import format_cost
from bot.web import WebServer
from tests.bot.dashboard.test_dashboard_http import NOW, row

CHROMIUM = os.environ.get("QUOTABOT_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("QUOTABOT_TEST_ARTIFACTS", "test-artifacts"))

playwright = pytest.importorskip("playwright.async_api", reason="pip install playwright")
if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"no Chromium at {CHROMIUM}: CI must run the browser test")
    pytest.skip(
        f"no Chromium at {CHROMIUM} (apt install chromium, or set QUOTABOT_TEST_CHROMIUM)",
        allow_module_level=True,
    )


@pytest.fixture
async def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[str, str]]:
    """quotabot's web server over a SQLite database with usage in it: a sign-in link for the
    Slack workspace T1, and the database's URL (for ``quotabot usage``)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'quotabot.db'}"
    monkeypatch.setenv("QUOTABOT_DATABASE_URL", url)
    upgrade = [sys.executable, "-m", "bot.cli", "db", "upgrade"]
    await asyncio.to_thread(subprocess.run, upgrade, check=True, env=dict(os.environ))
    settings = load_settings()
    async with open_app(settings) as app:
        for n, (model, cost) in enumerate(
            [("gpt-4o-mini", "0.0001"), ("gpt-4o", "0.0025"), ("gpt-4o", "0.0040")]
        ):
            await app.usage.record(row(n, model=model, cost=Decimal(cost), user=f"U{n}"))
        await app.usage.record(row(9, workspace="T2", cost=Decimal("7")))  # not T1's
        await app.usage.aclose()
        app.usage.start()
        server = WebServer(dashboard.routes(settings, app), host="127.0.0.1", port=0)
        await server.start()
        links = links_for(settings)
        yield links.url(Scope("slack", "T1")).replace(links.base_url, server.url), url
        await server.aclose()


def usage_json(database_url: str) -> list[dict[str, object]]:
    since = NOW.date().isoformat()
    out = subprocess.run(
        [sys.executable, "-m", "bot.cli", "usage", "--by", "workspace", "--json", "--since", since],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "QUOTABOT_DATABASE_URL": database_url},
    )
    return list(json.loads(out.stdout))


async def test_an_admin_signs_in_filters_and_downloads(
    served: tuple[str, str], tmp_path: Path
) -> None:
    link, database_url = served
    (t1,) = [
        line for line in await asyncio.to_thread(usage_json, database_url) if line["key"] == "T1"
    ]
    async with playwright.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = await browser.new_context(accept_downloads=True)
        page = await context.new_page()
        await page.goto(link)
        assert page.url.endswith("/dashboard")  # the token left the address bar
        total = page.locator('[data-total="cost"]')
        assert await total.inner_text() == format_cost(Decimal(str(t1["cost_usd"])))
        calls = await page.locator('[data-total="calls"]').inner_text()
        assert int(calls.replace(",", "")) == t1["calls"]

        await page.select_option('select[name="model"]', "gpt-4o")
        await page.click('button[type="submit"]')
        await page.wait_for_url("**/dashboard?*model=gpt-4o*")
        assert await total.inner_text() == format_cost(Decimal("0.0065"))
        offered = await page.locator('select[name="model"] option').all_inner_texts()
        assert offered == ["all", "gpt-4o", "gpt-4o-mini"]  # a chosen model hides no other
        await asyncio.to_thread(ARTIFACTS.mkdir, parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

        async with page.expect_download() as downloading:
            await page.click("text=by user (CSV)")
        download = await downloading.value
        saved = tmp_path / download.suggested_filename
        await download.save_as(saved)
        await browser.close()
    rows = list(csv.DictReader(io.StringIO(saved.read_text())))
    assert saved.name == "quotabot-usage-by-user.csv"
    got = {(r["user"], Decimal(r["cost_usd"])) for r in rows}
    assert got == {("U1", Decimal("0.0025")), ("U2", Decimal("0.0040"))}
