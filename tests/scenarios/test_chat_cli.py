"""`quotabot chat` with piped stdin, run as a user would: a real process, a real sandbox, a real
SQLite file; then `quotabot usage` reads back what was recorded."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.sandbox import SandboxConfig, SandboxServer
from fakes.ports import free_port

USAGE_LINE = re.compile(r"^\[(\d+) in / (\d+) out · \$(\d+\.\d+) · gpt-3\.5-turbo\]$")


def quotabot(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_piped_chat_against_the_builtin_sandbox(tmp_path: Path) -> None:
    prompts = ["What is a token bucket?", "", "Explain exponential backoff", "Why jitter?"]
    result = quotabot(
        "chat", "--channel", "general", "--user", "ada", stdin="\n".join(prompts) + "\n"
    )
    assert result.returncode == 0, result.stderr

    replies = result.stdout.splitlines()
    assert len(replies) == 3  # one per non-empty prompt, nothing else on stdout
    assert all(r.startswith("Sandbox answer:") for r in replies)

    status = result.stderr.splitlines()
    assert "built-in sandbox" in status[0] and "OPENAI_API_KEY" in status[0]
    usage_lines = [USAGE_LINE.match(line) for line in status[1:]]
    # Nothing else on stderr either: no per-request log lines between the answers.
    assert len(usage_lines) == 3 and all(usage_lines)

    report = quotabot("usage", "--by", "user", "--json")
    assert report.returncode == 0, report.stderr
    (ada,) = json.loads(report.stdout)
    assert ada["key"] == "ada" and ada["calls"] == 3 and ada["failed"] == 0
    shown_in = sum(int(m.group(1)) for m in usage_lines if m)
    shown_out = sum(int(m.group(2)) for m in usage_lines if m)
    assert (ada["prompt_tokens"], ada["completion_tokens"]) == (shown_in, shown_out)
    assert (tmp_path / "data" / "quotabot" / "quotabot.db").is_file()


async def test_piped_chat_against_a_configured_provider() -> None:
    """OPENAI_BASE_URL points at another server: the usage in the rows is what it served."""
    async with SandboxServer(SandboxConfig(api_key="sk-test")) as sandbox:
        env = {"OPENAI_BASE_URL": sandbox.base_url, "OPENAI_API_KEY": "sk-test"}
        result = await _in_thread(quotabot, "chat", stdin="hello\nworld\n", env=env)
        assert result.returncode == 0, result.stderr
        assert sandbox.base_url in result.stderr.splitlines()[0]
        assert len(result.stdout.splitlines()) == 2

        report = json.loads((await _in_thread(quotabot, "usage", "--by", "model", "--json")).stdout)
        served = sandbox.stats.total
        assert report[0]["prompt_tokens"] == served.prompt_tokens
        assert report[0]["completion_tokens"] == served.completion_tokens


def test_refusals_are_explained_and_the_exit_status_says_so() -> None:
    long_prompt = "word " * 20_000  # beyond gpt-3.5-turbo's 16,385-token window
    result = quotabot("chat", stdin=f"hi\n{long_prompt}\n")
    assert result.returncode == 1
    assert len(result.stdout.splitlines()) == 1  # the first prompt was still answered
    assert "shorten the prompt by at least" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_fallback_is_said_once_and_no_log_line_breaks_into_the_chat() -> None:
    """The service logs each fallback at INFO for servers; in the terminal the same line
    showed twice, the log's copy glued to the end of the answer being written."""
    spent = quotabot("budget", "set", "model:gpt-3.5-turbo", "spend_day", "0.000001")
    assert spent.returncode == 0, spent.stderr
    assert quotabot("budget", "set", "channel:design", "fallbacks", "gpt-4o-mini").returncode == 0
    result = quotabot("chat", "--channel", "design", stdin="hello\nagain\n")
    assert result.returncode == 0, result.stderr
    said = "answered by gpt-4o-mini instead of gpt-3.5-turbo: gpt-3.5-turbo's spend per day"
    status = result.stderr.splitlines()[1:]
    assert [line.startswith(said) for line in status] == [True, False, True, False]
    assert all("gpt-4o-mini]" in line for line in status[1::2])
    # Asked for, the log lines are there (on stderr, as for `serve`).
    logged = quotabot(
        "chat", "--channel", "design", stdin="hello\n", env={"QUOTABOT_LOG_LEVEL": "info"}
    )
    assert f"INFO bot.service.core: {said}" in logged.stderr


def test_bad_configuration_is_one_clear_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("max_tokens = -5\n")
    result = quotabot("chat", stdin="hi\n", env={"QUOTABOT_CONFIG": str(cfg)})
    assert result.returncode == 2
    assert result.stderr.startswith("quotabot: Invalid settings: max_tokens")
    assert "Traceback" not in result.stderr


async def _in_thread(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    return await asyncio.to_thread(fn, *args, **kwargs)


pytestmark = pytest.mark.timeout(120)


async def test_two_processes_share_one_budget_through_redis(redis_url: str, tmp_path: Path) -> None:
    """Two `quotabot chat` processes, a workspace limit of 4 requests per minute: 4 answers in
    all, not 4 each; the others are told the model is busy."""
    import uuid

    cfg = tmp_path / "quotabot.toml"
    cfg.write_text("[budgets.workspace]\nrpm = 4\n")
    async with SandboxServer(SandboxConfig(rpm=1000)) as sandbox:
        env = {
            "OPENAI_BASE_URL": sandbox.base_url,
            "OPENAI_API_KEY": "k",
            "QUOTABOT_CONFIG": str(cfg),
            "QUOTABOT_REDIS_URL": redis_url,
            "QUOTABOT_REDIS_PREFIX": f"qbtest:{uuid.uuid4().hex[:8]}",
            "QUOTABOT_REQUEST_DEADLINE": "3",
        }
        prompts = "".join(f"question {i}\n" for i in range(4))
        a, b = await asyncio.gather(
            _in_thread(quotabot, "chat", "--channel", "A", stdin=prompts, env=env),
            _in_thread(quotabot, "chat", "--channel", "B", stdin=prompts, env=env),
        )
    answered = len(a.stdout.splitlines()) + len(b.stdout.splitlines())
    assert answered == 4 == sandbox.stats.total.requests
    assert "busy" in a.stderr + b.stderr


def test_budget_commands_set_show_and_enforce_limits() -> None:
    # Each question reserves 33 prompt + 512 answer tokens and uses 50 to 115 of them.
    assert quotabot("budget", "set", "user", "tokens_day", "700").returncode == 0
    bad = quotabot("budget", "set", "chanel", "rpm", "3")
    assert bad.returncode == 2
    assert "unknown scope 'chanel'" in bad.stderr

    first = quotabot("chat", "--user", "ada", stdin="one\ntwo\n")
    assert first.returncode == 0, first.stderr
    shown = quotabot("budget", "show", "--user", "ada").stdout
    line = next(ln for ln in shown.splitlines() if ln.startswith("this user's tokens per day"))
    used = int(line.split(":")[1].split(" of ")[0].replace(",", ""))
    assert 100 < used < 240  # what the two answers took, read back after the process ended

    # The next process starts from that use: a third question no longer fits today.
    later = quotabot("chat", "--user", "ada", stdin="three\nfour\n")
    assert later.returncode == 1
    assert "this user's tokens per day" in later.stderr
    assert "resets at 00:00 UTC" in later.stderr

    # In the workspace's zone (UTC+13:45), the day began elsewhere; what was used is still in it.
    assert quotabot("budget", "set", "workspace", "timezone", "Pacific/Chatham").returncode == 0
    later = quotabot("chat", "--user", "ada", stdin="three\n")
    assert later.returncode == 1
    assert "resets at 00:00 Pacific/Chatham" in later.stderr
    assert quotabot("budget", "set", "workspace", "timezone", "off").returncode == 0

    assert quotabot("budget", "unset", "user", "tokens_day").returncode == 0
    assert quotabot("chat", "--user", "ada", stdin="five\n").returncode == 0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max-tokens", "0"], "max_tokens must be a whole number from 1 to 1,000,000; got 0"),
        (["--max-tokens", "-1"], "max_tokens must be a whole number from 1"),
        (["--temperature", "5"], "temperature must be from 0 to 2; got 5.0"),
        (["--temperature", "-0.1"], "temperature must be from 0 to 2"),
    ],
)
def test_channel_settings_no_request_could_be_sent_with_are_refused(
    flags: list[str], message: str
) -> None:
    result = quotabot("channel", "general", *flags)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()  # one line, no traceback
    assert line.startswith(f"quotabot: {message}")
    shown = quotabot("channel", "general")  # nothing was stored
    assert "max_tokens: 512" in shown.stdout and "temperature: None" in shown.stdout


def test_chat_pointed_at_quotabot_sandbox_with_no_key_is_answered(tmp_path: Path) -> None:
    """The README's `OPENAI_BASE_URL=http://127.0.0.1:8000/v1` against `quotabot sandbox`."""
    port = free_port()
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "bot", "sandbox", "--port", str(port)],
        stderr=subprocess.DEVNULL,
        env={**os.environ, "QUOTABOT_DATA_DIR": str(tmp_path)},
    )
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            time.sleep(0.1)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        env.update(OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1", QUOTABOT_DATA_DIR=str(tmp_path))
        result = subprocess.run(
            [sys.executable, "-m", "bot", "chat"],
            input="hello\n",
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('Sandbox answer: you said "hello"')


def test_mistakes_are_one_line_each_with_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        cases = [
            (["serve", "--sandbox", "--port", port], {}, f"127.0.0.1:{port} is in use"),
            (["sandbox", "--port", port], {}, f"127.0.0.1:{port} is in use"),
            (["db", "downgrade", "0099"], {}, "there is no schema revision '0099'"),
            (["usage"], {"QUOTABOT_DATA_DIR": "/proc/quotabot"}, "set QUOTABOT_DATA_DIR"),
            (["usage", "--since", "2026-12-05", "--until", "2026-12-01"], {}, "--since must"),
            (["usage"], {"QUOTABOT_LOG_LEVEL": "LOUD"}, "QUOTABOT_LOG_LEVEL"),
        ]
        for args, env, said in cases:
            result = quotabot(*args, env={"QUOTABOT_DATA_DIR": str(tmp_path), **env})
            lines = [ln for ln in result.stderr.splitlines() if ln.startswith("quotabot: ")]
            assert (result.returncode, len(lines)) == (2, 1), (args, result.stderr)
            assert said in lines[0] and "Traceback" not in result.stderr, (args, result.stderr)


def test_downgrading_to_base_asks_first(tmp_path: Path) -> None:
    env = {"QUOTABOT_DATA_DIR": str(tmp_path)}
    assert quotabot("db", "upgrade", env=env).returncode == 0
    refused = quotabot("db", "downgrade", "base", env=env)  # no terminal to ask at
    assert refused.returncode == 1 and "run it with --yes" in refused.stderr
    assert "(head: " in quotabot("db", "current", env=env).stdout
    head = sorted(
        p.name for p in (Path(__file__).parents[2] / "migrations/versions").glob("0*.py")
    )[-1][:4]
    assert f"schema revision: {head}" in quotabot("db", "current", env=env).stdout
    done = quotabot("db", "downgrade", "base", "--yes", env=env)
    assert done.returncode == 0 and "schema revision: none" in done.stdout


def test_budget_list_shows_every_limit_and_where_it_was_set(tmp_path: Path) -> None:
    config = tmp_path / "quotabot.toml"
    config.write_text("[budgets.user]\nrpd = 9\ntokens_day = 1000\n")
    env = {"QUOTABOT_DATA_DIR": str(tmp_path), "QUOTABOT_CONFIG": str(config)}
    assert quotabot("budget", "set", "user", "rpd", "5", env=env).returncode == 0
    assert quotabot("budget", "set", "channel", "models", "gpt-4o-mini", env=env).returncode == 0
    listed = quotabot("budget", "list", env=env)
    assert listed.returncode == 0
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert ["channel", "models", "gpt-4o-mini", "budget", "set"] in rows
    assert ["user", "rpd", "5", "budget", "set"] in rows
    assert ["user", "rpd", "9", "config", "file", "(overridden)"] in rows
    assert ["user", "tokens_day", "1000", "config", "file"] in rows


def test_config_shows_the_settings_and_checks_what_quotabot_talks_to(tmp_path: Path) -> None:
    async def with_sandbox() -> tuple[subprocess.CompletedProcess[str], ...]:
        async with SandboxServer(SandboxConfig()) as sandbox:
            env = {
                "QUOTABOT_DATA_DIR": str(tmp_path),
                "OPENAI_BASE_URL": sandbox.base_url,
                "OPENAI_API_KEY": "sk-very-secret",
            }
            good = await asyncio.to_thread(quotabot, "config", env=env)
            bad = await asyncio.to_thread(
                quotabot, "config", env={**env, "QUOTABOT_REDIS_URL": "redis://127.0.0.1:1/0"}
            )
            return good, bad

    good, bad = asyncio.run(with_sandbox())
    assert good.returncode == 0, good.stdout + good.stderr
    lines = good.stdout.splitlines()
    assert any(ln.split()[:3] == ["OPENAI_API_KEY", "set", "(hidden)"] for ln in lines)
    assert any(ln.startswith("QUOTABOT_DATA_DIR") and ln.endswith("environment") for ln in lines)
    assert any(ln.startswith("ok    provider:") and "takes the key" in ln for ln in lines)
    assert "sk-very-secret" not in good.stdout + good.stderr
    assert bad.returncode == 1
    assert any(ln.startswith("FAIL  redis:") for ln in bad.stdout.splitlines())
