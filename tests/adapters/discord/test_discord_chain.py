"""Which messages the bot answers, and the reply chain it answers with (no gateway needed)."""

from __future__ import annotations

import asyncio
from typing import Any

from adapters.discord.chain import Post, addressed, conversation, strip_mention
from adapters.discord.reply import InteractionReply
from bot import messages
from bot.models import Message

BOT = "100"


def post(
    pid: str, content: str, *, author: str = "7", reply_to: str | None = None, **kw: object
) -> Post:
    return Post(
        id=pid, author=author, author_is_bot=author == BOT, content=content, reply_to=reply_to, **kw
    )  # type: ignore[arg-type]


def test_who_is_answered() -> None:
    assert addressed(post("1", "hi", mentions=frozenset({BOT})), BOT)
    assert addressed(post("1", "hi", direct=True), BOT)
    assert addressed(post("1", "more?", reply_to="0", reply_to_author=BOT), BOT)
    assert not addressed(post("1", "just people"), BOT)
    assert not addressed(post("1", "me", author=BOT, mentions=frozenset({BOT})), BOT)
    other_bot = Post(id="1", author="9", author_is_bot=True, content="hi", direct=True)
    assert not addressed(other_bot, BOT)


def test_mentions_are_stripped() -> None:
    assert (
        strip_mention(f"<@{BOT}> what is <@!{BOT}> jitter? <@55>", BOT) == "what is  jitter? <@55>"
    )


async def test_the_chain_goes_oldest_first_with_roles() -> None:
    store = {
        "1": post("1", f"<@{BOT}> name a colour"),
        "2": post("2", "Teal.", author=BOT, reply_to="1"),
        "3": post("3", "why?", reply_to="2"),
        "4": post("4", "Because.", author=BOT, reply_to="3"),
    }
    fetched: list[str] = []

    async def fetch(pid: str) -> Post | None:
        fetched.append(pid)
        return store.get(pid)

    history, root, _ = await conversation(post("5", "ok, another?", reply_to="4"), BOT, fetch)
    assert history == (
        Message("user", "name a colour"),
        Message("assistant", "Teal."),
        Message("user", "why?"),
        Message("assistant", "Because."),
    )
    assert root == "1" and fetched == ["4", "3", "2", "1"]

    short, _, _ = await conversation(post("5", "x", reply_to="4"), BOT, fetch, depth=2)
    assert [m.content for m in short] == ["why?", "Because."]  # the newest part
    gone, root, _ = await conversation(post("6", "x", reply_to="404"), BOT, fetch)
    assert gone == () and root == "6"  # a deleted parent ends the chain


class _Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def edit(self, text: str, message: str | None = None) -> None:
        self.sent.append(("edit", text))

    async def follow_up(self, text: str) -> str:
        self.sent.append(("follow_up", text))
        return str(len(self.sent))

    async def show_embed(self, embed: dict[str, Any]) -> None:
        self.sent.append(("embed", str(embed)))


async def test_pieces_past_the_deadline_become_one_note() -> None:
    out = _Recorder()
    loop = asyncio.get_running_loop()
    await InteractionReply(out, deadline=loop.time() + 60, limit=5).finish("one\n\ntwo\n\nthree")
    assert out.sent == [("edit", "one"), ("follow_up", "two"), ("follow_up", "three")]

    late = _Recorder()
    await InteractionReply(late, deadline=loop.time() - 1, limit=5).finish("one\n\ntwo\n\nthree")
    assert late.sent == [("edit", "one"), ("follow_up", messages.DISCORD_CUT_OFF_REST)]
