"""Structured logs: with QUOTABOT_LOG_FORMAT=json each line is a JSON object, and the lines
logged while a chat request is answered carry its id, the same id as its usage rows."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from bot import logs
from bot.app import open_app
from bot.config import load_settings
from bot.errors import ServerError
from bot.models import ChatRequest, Message
from bot.sandbox import SandboxConfig, SandboxServer


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_json_lines_carry_the_request_id_of_the_usage_rows(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    logs.configure("INFO", "json")
    # Every call fails once with a 500 and is retried: the retry is logged at INFO.
    config = SandboxConfig(rpm=None, tpm=None, rpd=None, failure_rate=1.0, failures=("500",))
    async with SandboxServer(config) as sandbox:
        monkeypatch.setenv("OPENAI_BASE_URL", sandbox.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("QUOTABOT_MAX_ATTEMPTS", "2")
        monkeypatch.setenv("QUOTABOT_RETRY_BASE", "0.01")
        async with open_app(load_settings()) as app:
            request = ChatRequest(
                platform="slack",
                workspace="T1",
                channel="C1",
                user="U1",
                messages=(Message("user", "a private question about payroll"),),
            )
            with pytest.raises(ServerError):  # both attempts fail: that is the point
                await app.service.handle(request)
            rows = await app.usage.rows()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    retried = [x for x in lines if "retrying" in x["message"]]
    assert retried and all(x["request_id"] == request.request_id for x in retried)
    assert {x["level"] for x in lines} <= {"DEBUG", "INFO", "WARNING", "ERROR"}
    assert rows and {r.request_id for r in rows} == {request.request_id}
    assert not any("payroll" in json.dumps(x) for x in lines)  # no message text in any log


def test_text_format_is_the_default(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    logs.configure("INFO")
    logging.getLogger("quotabot.test").info("hello")
    err = capsys.readouterr().err
    assert "INFO quotabot.test: hello" in err
    with pytest.raises(json.JSONDecodeError):
        json.loads(err.splitlines()[-1])


async def test_even_verbose_logs_carry_no_message_text(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    """`--verbose` (DEBUG) with message text stored: libraries that log statements, request
    bodies or API arguments at DEBUG are held at INFO, and SQLAlchemy's engine stays quiet."""
    levels = {n: logging.getLogger(n).level for n in (*logs.PAYLOAD_LOGGERS, "sqlalchemy")}
    try:
        logs.configure("INFO", verbose=True)
        async with SandboxServer(SandboxConfig(rpm=None, tpm=None, rpd=None)) as sandbox:
            monkeypatch.setenv("OPENAI_BASE_URL", sandbox.base_url)
            monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
            monkeypatch.setenv("QUOTABOT_STORE_MESSAGE_TEXT", "true")
            async with open_app(load_settings()) as app:
                request = ChatRequest(
                    platform="slack",
                    workspace="T1",
                    channel="C1",
                    user="U1",
                    messages=(Message("user", "the launch code is 0000-swordfish"),),
                )
                reply = await app.service.handle(request)
        logging.getLogger("bot.test").debug("verbose indeed")
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    written = capsys.readouterr().err
    assert "verbose indeed" in written
    assert "swordfish" not in written and reply.text[:40] not in written  # ...and still private
    assert "INSERT INTO" not in written
