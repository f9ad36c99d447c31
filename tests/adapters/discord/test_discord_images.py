"""Images on Discord, end to end: a real PNG served as an attachment by the fake Discord API
(as its CDN would), /ask with its ``image`` option over signed HTTP interactions and through
discord.py's command tree, an image attached to a mention over the gateway, the sandbox seeing
it. Asserted: what the user reads, the downloads, the sandbox's image count, the usage rows."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image as PILImage

from fakes.discord_api import BOT_ID, CHANNEL, GUILD, interaction, message, option, resolved, user
from tests.adapters.discord import test_discord_gateway as gateway_tests
from tests.adapters.discord import test_discord_http as http_tests

rig = http_tests.rig
gateway = gateway_tests.rig
BOT = user(BOT_ID, name="quotabot", bot=True)


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (width, height), (0, 128, 0)).save(out, format="PNG")
    return out.getvalue()


def ask(prompt: str, image: dict[str, Any]) -> dict[str, Any]:
    options = [option("prompt", prompt), option("image", image["id"], 11)]
    return resolved(interaction("ask", options), image)


async def test_slash_ask_with_an_image_shows_it_to_the_model(rig: http_tests.Rig) -> None:
    await rig.app.channels.set("discord", GUILD, CHANNEL, model="gpt-4o")
    shot = rig.api.add_attachment(png(2048, 4096), "poster.png", "image/png")
    (said,) = await rig.ask(ask("what does the poster say?", shot))
    assert said.startswith("Sandbox answer")
    assert rig.api.downloads == [shot["id"]]
    served = rig.sandbox.stats.model("gpt-4o")
    assert served.images == 1
    (row,) = await rig.app.usage.rows()
    assert row.prompt_tokens == served.prompt_tokens > 1105  # 2048x4096, high detail: 1105


async def test_slash_ask_refuses_an_image_for_a_model_that_cannot_see(
    rig: http_tests.Rig,
) -> None:
    shot = rig.api.add_attachment(png(16, 16), "cat.png", "image/png")
    (said,) = await rig.ask(ask("what is it?", shot))
    assert said.startswith("⚠️ gpt-3.5-turbo cannot see images. Ask again with a model that can")
    assert rig.api.downloads == []
    assert rig.sandbox.stats.total.requests == 0
    assert await rig.app.usage.rows() == []


async def test_an_image_linked_off_discords_hosts_is_refused_unfetched(
    rig: http_tests.Rig,
) -> None:
    await rig.app.channels.set("discord", GUILD, CHANNEL, model="gpt-4o")
    shot = rig.api.add_attachment(png(16, 16), "cat.png", "image/png")
    shot = {**shot, "url": "https://cdn.discordapp.com.example.net/cat.png"}
    (said,) = await rig.ask(ask("what is it?", shot))
    assert "could not download the image cat.png" in said
    assert "does not lead to Discord's file hosts" in said
    assert rig.api.downloads == []
    assert rig.sandbox.stats.total.requests == 0


async def test_an_image_on_a_mention_over_the_gateway(gateway: gateway_tests.Rig) -> None:
    await gateway.app.channels.set("discord", GUILD, CHANNEL, model="gpt-4.1-mini")
    shot = gateway.api.add_attachment(png(1024, 1024), "diagram.png", "image/png")
    asked = message(f"<@{BOT_ID}> explain this", mentions=[BOT], attachments=[shot])
    (said,) = await gateway.message(asked)
    assert said.startswith("Sandbox answer")
    assert gateway.api.downloads == [shot["id"]]
    served = gateway.sandbox.stats.model("gpt-4.1-mini")
    assert served.images == 1
    (row,) = await gateway.app.usage.rows()
    assert row.prompt_tokens == served.prompt_tokens > 1659  # 1024 patches x 1.62


async def test_slash_ask_with_an_image_through_the_command_tree(
    gateway: gateway_tests.Rig,
) -> None:
    await gateway.app.channels.set("discord", GUILD, CHANNEL, model="gpt-4o")
    shot = gateway.api.add_attachment(png(512, 512), "chart.png", "image/png")
    payload = ask("what trend?", shot)
    await gateway.event("interaction_create", payload)
    (said,) = gateway.api.thread(payload["token"])
    assert said.content.startswith("Sandbox answer")
    assert gateway.sandbox.stats.model("gpt-4o").images == 1


async def test_images_up_the_reply_chain_go_with_a_follow_up(
    gateway: gateway_tests.Rig,
) -> None:
    await gateway.app.channels.set("discord", GUILD, CHANNEL, model="gpt-4.1-mini")
    shot = gateway.api.add_attachment(png(64, 64), "chart.png", "image/png")
    asked = message(f"<@{BOT_ID}> what is this chart?", mentions=[BOT], attachments=[shot])
    await gateway.message(asked)
    bot_reply = gateway.api.stored[gateway.api.channels[CHANNEL][0].id]
    (said,) = await gateway.message(message("and its trend?", reply_to=bot_reply))
    assert said.startswith("Sandbox answer")
    # The chart went with the question that brought it, and again with the follow-up.
    assert gateway.sandbox.stats.model("gpt-4.1-mini").images == 2
    assert gateway.api.downloads == [shot["id"], shot["id"]]
