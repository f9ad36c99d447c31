"""The terminal adapter: a chat channel on stdin/stdout, for trying quotabot and for scripts.

At a terminal it is a conversation (each turn sees the earlier ones, ``/new`` starts over) and
answers stream in as they are generated. With stdin piped, every line is a separate prompt and
stdout gets exactly one reply per prompt; status lines go to stderr so stdout stays clean.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
from typing import TextIO

from bot import messages
from bot.budget.tickets import QueueInfo
from bot.errors import ProviderError, QuotabotError
from bot.models import ChatRequest, Message, Reply
from bot.service import Service

log = logging.getLogger(__name__)

PLATFORM = "terminal"
WORKSPACE = "local"


class TerminalChat:
    def __init__(
        self,
        service: Service,
        *,
        stdin: TextIO,
        stdout: TextIO,
        stderr: TextIO,
        interactive: bool,
        channel: str = "terminal",
        user: str | None = None,
        model: str | None = None,
    ):
        self.service = service
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.interactive = interactive
        self.channel = channel
        self.user = user or getpass.getuser()
        self.model = model
        self.history: list[Message] = []

    async def run(self) -> int:
        """Answer until end of input. Exit status 1 if any prompt could not be answered."""
        failed = 0
        while (line := await self._read()) is not None:
            prompt = line.strip()
            if not prompt:
                continue
            if self.interactive and prompt in ("/new", "/reset"):
                self.history.clear()
                self._status("(new conversation)")
                continue
            if self.interactive and prompt in ("/quit", "/exit"):
                break
            if not await self._answer(prompt):
                failed += 1
        return 1 if failed else 0

    async def _read(self) -> str | None:
        if self.interactive:
            self.stdout.write("you> ")
            self.stdout.flush()
        line = await asyncio.to_thread(self.stdin.readline)
        return line or None

    async def _answer(self, prompt: str) -> bool:
        question = Message("user", prompt)
        request = ChatRequest(
            platform=PLATFORM,
            workspace=WORKSPACE,
            channel=self.channel,
            user=self.user,
            messages=(*self.history, question),
            model=self.model,
        )
        try:
            if self.interactive:
                self.stdout.write("bot> ")
                reply = await self.service.handle(
                    request, on_delta=self._write_delta, on_queued=self._queued
                )
                self.stdout.write("\n")
            else:
                reply = await self.service.handle(request, on_queued=self._queued)
                self.stdout.write(reply.text.rstrip("\n") + "\n")
            self.stdout.flush()
        except QuotabotError as exc:
            if self.interactive:
                self.stdout.write("\n")
            if isinstance(exc, ProviderError):
                log.warning("provider call failed: %s", exc)
            self._status(f"quotabot: {messages.explain(exc, model=request.model)}")
            return False
        if self.interactive:
            self.history += [question, Message("assistant", reply.text)]
        self._report(reply)
        return True

    async def _queued(self, info: QueueInfo) -> None:
        self._status(messages.queued(info))

    async def _write_delta(self, delta: str) -> None:
        self.stdout.write(delta)
        self.stdout.flush()

    def _report(self, reply: Reply) -> None:
        self._status(messages.usage_line(reply))

    def _status(self, text: str) -> None:
        out = self.stdout if self.interactive else self.stderr
        out.write(text + "\n")
        out.flush()
