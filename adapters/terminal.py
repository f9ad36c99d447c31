"""The terminal adapter: a chat channel on stdin/stdout, for trying quotabot and for scripts.

At a terminal it is a conversation (each turn sees the earlier ones, ``/new`` starts over) and
answers stream in as they are generated; Ctrl-C clears the line being typed or stops the answer
being written, Ctrl-D ends. With stdin piped, every line is a separate prompt and stdout gets
exactly one reply per prompt; status lines go to stderr so stdout stays clean.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import signal
from collections.abc import Iterator
from typing import TextIO

from bot import messages
from bot.budget.tickets import QueueInfo
from bot.errors import ProviderError, QuotabotError
from bot.models import ChatRequest, Message, Reply
from bot.service import Service

log = logging.getLogger(__name__)

PLATFORM = "terminal"
WORKSPACE = "local"
PROMPT = "you> "
HELP = """Chat commands (never sent to the model):
  /new      start a new conversation (the model forgets this one)
  /help     this list
  /quit     end (or Ctrl-D); Ctrl-C clears the line, or stops an answer being written"""


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
        self._reader: asyncio.Future[str] | None = None
        self._answering: asyncio.Future[bool] | None = None

    async def run(self) -> int:
        """Answer until end of input. Exit status 1 if any prompt could not be answered."""
        with self._ctrl_c():
            return await self._loop()

    async def _loop(self) -> int:
        failed = 0
        while (line := await self._read()) is not None:
            prompt = line.strip()
            if not prompt:
                continue
            if self.interactive and prompt in ("/new", "/reset"):
                self.history.clear()
                self._status("(new conversation)")
                continue
            if self.interactive and prompt in ("/help", "/?"):
                self._status(HELP)
                continue
            if self.interactive and prompt in ("/quit", "/exit"):
                break
            self._answering = asyncio.ensure_future(self._answer(prompt))
            try:
                ok = await self._answering
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise  # the chat itself is being stopped
                self._status("\n(stopped)")
                continue
            finally:
                self._answering = None
            failed += not ok
        if self.interactive:
            self.stdout.write("\n")  # Ctrl-D leaves the shell's prompt on a line of its own
            self.stdout.flush()
        return 1 if failed else 0

    async def _read(self) -> str | None:
        if self.interactive:
            self.stdout.write(PROMPT)
            self.stdout.flush()
        if self._reader is None or self._reader.done():
            # One read at a time: after Ctrl-C the same read goes on (the terminal has dropped
            # what was typed), only the prompt is shown again.
            self._reader = asyncio.ensure_future(asyncio.to_thread(self.stdin.readline))
        line = await asyncio.shield(self._reader)
        return line or None

    @contextlib.contextmanager
    def _ctrl_c(self) -> Iterator[None]:
        """At a terminal, Ctrl-C stops the answer being written, or starts a fresh line."""
        loop = asyncio.get_running_loop()
        if not self.interactive:
            yield
            return
        try:
            loop.add_signal_handler(signal.SIGINT, self._interrupted)
        except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
            yield
            return
        try:
            yield
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    def _interrupted(self) -> None:
        if self._answering is not None:
            self._answering.cancel()
            return
        self.stdout.write("\n" + PROMPT)
        self.stdout.flush()

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
        if reply.fallback:
            self._status(reply.fallback)
        self._status(messages.usage_line(reply))

    def _status(self, text: str) -> None:
        out = self.stdout if self.interactive else self.stderr
        out.write(text + "\n")
        out.flush()
