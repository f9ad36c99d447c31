"""Images in Slack, end to end: a real PNG shared as a Slack file object (served by the fake
Slack API at its url_private_download), a signed event posted to quotabot, the sandbox seeing
the image. Asserted: what the thread shows, the downloads, the sandbox's image count and the
usage row's prompt tokens."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from PIL import Image as PILImage

from bot import tokens
from fakes import slack_events as ev
from fakes.slack_workspace import DEFAULT_CHANNEL
from tests.adapters.slack import test_slack_http
from tests.adapters.slack.test_slack_http import Rig, answered, usage_rows, wait_for

rig = test_slack_http.rig


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (width, height), (250, 200, 0)).save(out, format="PNG")
    return out.getvalue()


def warnings(rig: Rig, ts: str) -> list[str]:
    return [t for t in rig.api.messages(DEFAULT_CHANNEL, ts) if t.startswith(":warning:")]


async def test_an_image_in_a_mention_is_shown_to_a_vision_model_and_counted(rig: Rig) -> None:
    await rig.app.channels.set("slack", rig.api.workspace.team_id, DEFAULT_CHANNEL, model="gpt-4o")
    shot = rig.api.add_file(png(1024, 1024), "screenshot.png", "image/png")
    payload = rig.api.seed_event(ev.with_files(ev.app_mention("what is on it?"), [shot]))
    ts = payload["event"]["ts"]
    await rig.post(payload)
    await wait_for(lambda: answered(rig, DEFAULT_CHANNEL, ts))
    assert rig.api.downloads == [shot["id"]]  # with the bot token, from the fake's file host
    assert rig.sandbox.stats.model("gpt-4o").images == 1
    (row,) = await usage_rows(rig, 1)
    assert row.model == "gpt-4o"
    assert row.prompt_tokens == rig.sandbox.stats.model("gpt-4o").prompt_tokens
    words = tokens.count_text("what is on it?", "o200k_base")
    assert row.prompt_tokens >= 765 + words  # the image's 765 tokens (1024x1024, high detail)


async def test_a_channel_model_that_cannot_see_says_which_can(rig: Rig) -> None:
    shot = rig.api.add_file(png(64, 64), "cat.png", "image/png")
    payload = rig.api.seed_event(ev.with_files(ev.app_mention("what is it?"), [shot]))
    ts = payload["event"]["ts"]
    await rig.post(payload)
    await wait_for(lambda: warnings(rig, ts))
    (warning,) = warnings(rig, ts)
    assert warning.startswith(":warning: gpt-3.5-turbo cannot see images.")
    assert "gpt-4o" in warning and "gpt-4.1-mini" in warning
    assert rig.api.downloads == []  # refused before the download
    assert rig.sandbox.stats.total.requests == 0
    assert await rig.app.usage.rows() == []


@pytest.fixture
async def elsewhere() -> AsyncIterator[tuple[str, list[str]]]:
    """A file server that is not Slack's: its URL and the paths it was asked for."""
    hits: list[str] = []

    async def serve(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=png(8, 8), content_type="image/png")

    app = web.Application()
    app.router.add_get("/{tail:.*}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", hits
    await runner.cleanup()


async def test_an_image_linked_off_slacks_file_hosts_is_refused_never_fetched(
    rig: Rig, elsewhere: tuple[str, list[str]]
) -> None:
    await rig.app.channels.set("slack", rig.api.workspace.team_id, DEFAULT_CHANNEL, model="gpt-4o")
    url, hits = elsewhere
    shot = rig.api.add_file(png(8, 8), "x.png", "image/png")
    shot = {**shot, "url_private_download": f"{url}/x.png", "url_private": f"{url}/x.png"}
    payload = rig.api.seed_event(ev.with_files(ev.app_mention("and this?"), [shot]))
    ts = payload["event"]["ts"]
    await rig.post(payload)
    await wait_for(lambda: warnings(rig, ts))
    (warning,) = warnings(rig, ts)
    assert "could not download the image x.png" in warning
    assert "does not lead to Slack's file hosts" in warning
    assert hits == []
    assert rig.sandbox.stats.total.requests == 0


async def test_an_image_over_20_mb_or_of_another_format_is_refused_unread(rig: Rig) -> None:
    await rig.app.channels.set("slack", rig.api.workspace.team_id, DEFAULT_CHANNEL, model="gpt-4o")
    big = rig.api.add_file(png(8, 8), "huge.png", "image/png", size=30 << 20)
    svg = rig.api.add_file(b"<svg/>", "logo.svg", "image/svg+xml")
    posted = []
    for f in (big, svg):
        payload = rig.api.seed_event(ev.with_files(ev.app_mention("look"), [f]))
        posted.append(payload["event"]["ts"])
        await rig.post(payload)
    await wait_for(lambda: all(warnings(rig, ts) for ts in posted))
    (too_big,), (other,) = (warnings(rig, ts) for ts in posted)
    assert "huge.png is 30.0 MB, but images may be up to 20.0 MB" in too_big
    assert "logo.svg is not an image the model can read" in other
    assert rig.api.downloads == []
    assert rig.sandbox.stats.total.requests == 0


async def test_images_earlier_in_the_thread_are_shown_with_a_follow_up(rig: Rig) -> None:
    """The latest images of the thread go with each question (the question's own too), on
    the messages they came with; a model that cannot see answers from the text alone."""
    await rig.app.channels.set("slack", rig.api.workspace.team_id, DEFAULT_CHANNEL, model="gpt-4o")
    shots = [rig.api.add_file(png(64, 64), f"shot{n}.png", "image/png") for n in range(6)]
    first = rig.api.seed_event(ev.with_files(ev.app_mention("what is on them?"), shots[:5]))
    root = first["event"]["ts"]
    await rig.post(first)
    await wait_for(lambda: answered(rig, DEFAULT_CHANNEL, root))
    assert rig.sandbox.stats.model("gpt-4o").images == 5  # the question's own: all of them

    follow = ev.with_files(ev.thread_reply("and this one?", thread_ts=root), shots[5:])
    await rig.post(rig.api.seed_event(follow))
    await wait_for(lambda: len(answered(rig, DEFAULT_CHANNEL, root)) == 2)
    # Its own image, and the latest 4 of the 5 before it.
    assert rig.sandbox.stats.model("gpt-4o").images == 5 + 1 + 4
    assert sorted(rig.api.downloads) == sorted(
        [s["id"] for s in shots[:5]] + [s["id"] for s in shots[1:6]]
    )

    await rig.app.channels.set(
        "slack", rig.api.workspace.team_id, DEFAULT_CHANNEL, model="gpt-3.5-turbo"
    )
    text_only = ev.thread_reply("summarise, please", thread_ts=root)
    await rig.post(rig.api.seed_event(text_only))
    await wait_for(lambda: len(answered(rig, DEFAULT_CHANNEL, root)) == 3)
    assert rig.sandbox.stats.model("gpt-3.5-turbo").requests == 1
    assert len(rig.api.downloads) == 10  # nothing fetched for a model that cannot see
