"""`quotabot chat` at a real terminal (a pseudo-terminal it has as its controlling tty): /help
is answered by quotabot itself, Ctrl-C drops the line being typed, Ctrl-D ends on a fresh line."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import subprocess
import sys
import termios
import time
from pathlib import Path


def _controlling_tty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    def __init__(self, tmp_path: Path):
        self.master, slave = pty.openpty()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QUOTABOT_", "OPENAI_"))}
        env["QUOTABOT_DATA_DIR"] = str(tmp_path)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "chat"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            preexec_fn=_controlling_tty,
        )
        os.close(slave)
        self.screen = b""

    def read_until(self, text: bytes, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        while text not in self.screen:
            left = deadline - time.monotonic()
            assert left > 0, f"never saw {text!r} in {self.screen.decode(errors='replace')}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    self.screen += os.read(self.master, 4096)
                except OSError:  # the child is gone
                    break

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=20)
        finally:
            os.close(self.master)


def test_help_ctrl_c_and_ctrl_d_at_a_terminal(tmp_path: Path) -> None:
    term = Terminal(tmp_path)
    try:
        term.read_until(b"you> ")
        term.type(b"/help\n")
        term.read_until(b"/quit")
        term.type(b"a half typed line")
        term.read_until(b"half typed line")
        term.type(b"\x03")  # Ctrl-C: the terminal sends SIGINT and drops the line
        term.read_until(b"^C")
        term.type(b"what is a bucket\n")
        term.read_until(b"in / ")  # the usage line after the answer
        term.type(b"\x04")  # Ctrl-D at an empty prompt
        term.read_until(b"you> \r\n")  # the shell's prompt gets a line of its own
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
    screen = term.screen.decode(errors="replace").replace("\r\n", "\n")
    assert "Chat commands (never sent to the model)" in screen
    assert 'you said "what is a bucket"' in screen  # not the line Ctrl-C dropped
    assert "half typed line what" not in screen and "Traceback" not in screen
