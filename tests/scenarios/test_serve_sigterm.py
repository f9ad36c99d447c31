"""SIGTERM with answers under way: `quotabot serve` (a real process) stops taking events,
finishes the answers it had started, records their usage, and exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bot.sandbox import SandboxConfig, SandboxServer
from fakes import slack_events as ev
from fakes.ports import free_port
from fakes.slack_api import DEFAULT_TOKEN, FakeSlackAPI
from fakes.slack_workspace import DEFAULT_CHANNEL

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.mark.parametrize(
    ("latency", "grace", "finished"),
    [(1.5, 30.0, True), (20.0, 0.5, False)],
    ids=["answers finish within the grace", "answers past the grace are stopped"],
)
async def test_sigterm_stops_taking_events_then_finishes_or_stops_answers_and_exits_0(
    tmp_path: Path, latency: float, grace: float, finished: bool
) -> None:
    async with (
        SandboxServer(SandboxConfig(rpm=None, tpm=None, rpd=None, latency=latency)) as sandbox,
        FakeSlackAPI(streaming_supported=False) as api,
    ):
        port = free_port()
        log = (tmp_path / "serve.log").open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QUOTABOT_", "SLACK_"))}
        env.update(
            QUOTABOT_DATA_DIR=str(tmp_path),
            QUOTABOT_HTTP_PORT=str(port),
            QUOTABOT_PROVIDER_TIER="paid",
            QUOTABOT_SHUTDOWN_GRACE=str(grace),
            OPENAI_BASE_URL=sandbox.base_url,
            OPENAI_API_KEY="sk-test",
            SLACK_BOT_TOKEN=DEFAULT_TOKEN,
            SLACK_SIGNING_SECRET=SECRET,
            SLACK_API_URL=api.url,
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import bot.cli as c; c.main()",
            "serve",
            "--no-scheduler",
            env=env,
            stderr=log,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                for _ in range(200):
                    try:
                        if (await http.get(f"{url}/healthz")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        await asyncio.sleep(0.05)
                payloads = [api.seed_event(ev.app_mention(f"question {i}")) for i in range(3)]
                for payload in payloads:
                    assert (
                        await ev.post_event(http, f"{url}/slack/events", payload, SECRET)
                    ).status_code == 200
                for _ in range(200):  # all three have their placeholder: they are under way
                    if len(api.calls_to("chat.postMessage")) >= 3:
                        break
                    await asyncio.sleep(0.02)
                await asyncio.sleep(0.3)  # and with the (slow) provider
                assert sandbox.stats.total.requests == 0  # none answered yet

                proc.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.3)
                late = api.seed_event(ev.app_mention("too late"))
                with pytest.raises(httpx.HTTPError):  # no longer taking events
                    await ev.post_event(http, f"{url}/slack/events", late, SECRET)
            stopped = asyncio.get_running_loop().time()
            assert await asyncio.wait_for(proc.wait(), 30) == 0
            if not finished:
                assert asyncio.get_running_loop().time() - stopped < grace + 5
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            log.close()
        for payload in payloads:
            ts = payload["event"]["ts"]  # type: ignore[index]
            thread = api.messages(DEFAULT_CHANNEL, ts)
            answers = [m for m in thread if m.startswith("Sandbox")]
            if finished:
                assert len(answers) == 1, thread
            else:  # told to ask again, not left with "Thinking..."
                assert answers == [] and any("restarting" in m for m in thread), thread
        # The late one never reached the provider.
        assert sandbox.stats.total.requests == (3 if finished else 0)
    with sqlite3.connect(tmp_path / "quotabot.db") as db:
        outcomes = [r[0] for r in db.execute("SELECT outcome FROM usage")]
        kept = db.execute("SELECT count(*) FROM seen_events WHERE payload IS NOT NULL")
        assert kept.fetchone() == (0,)  # every event done: no message text kept
    assert outcomes == (["ok", "ok", "ok"] if finished else [])
    assert list((tmp_path / "inbox").glob("*")) == []  # nor in the journal


async def test_adapters_can_be_switched_off_per_process(tmp_path: Path) -> None:
    """Scaled layouts: this replica serves neither Slack nor Discord, whatever is configured."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUOTABOT_", "SLACK_"))}
    env.update(
        QUOTABOT_DATA_DIR=str(tmp_path),
        QUOTABOT_HTTP_PORT=str(port),
        SLACK_BOT_TOKEN=DEFAULT_TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        DISCORD_PUBLIC_KEY="ab" * 32,
        DISCORD_APPLICATION_ID="1234567890",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import bot.cli as c; c.main()",
        "serve",
        "--sandbox",  # no provider here: the sandbox must be asked for
        "--no-scheduler",
        "--no-slack",
        "--no-discord",
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        line = ""
        while "serving on" not in line:
            line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
            assert line, "serve ended before it started"
        assert "Slack: off" in line and "Discord: off" in line
        assert "provider: the sandbox at http://127.0.0.1:" in line
        async with httpx.AsyncClient() as http:
            url = f"http://127.0.0.1:{port}"
            assert (await http.post(f"{url}/slack/events", content=b"{}")).status_code == 404
            assert (
                await http.post(f"{url}/discord/interactions", content=b"{}")
            ).status_code == 404
            assert (await http.get(f"{url}/healthz")).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_serve_without_a_provider_refuses_to_answer_real_users_from_the_sandbox(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUOTABOT_", "OPENAI_"))}
    env.update(QUOTABOT_DATA_DIR=str(tmp_path), SLACK_BOT_TOKEN=DEFAULT_TOKEN)
    env.update(SLACK_SIGNING_SECRET=SECRET)
    result = subprocess.run(
        [sys.executable, "-m", "bot", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "no provider is set" in line and "OPENAI_API_KEY" in line and "--sandbox" in line


@pytest.mark.parametrize(
    ("half", "said"),
    [
        ({"SLACK_BOT_TOKEN": DEFAULT_TOKEN}, "SLACK_BOT_TOKEN is set but neither"),
        ({"SLACK_SIGNING_SECRET": SECRET}, "SLACK_SIGNING_SECRET is set but SLACK_BOT_TOKEN"),
        ({"DISCORD_PUBLIC_KEY": "ab" * 32}, "DISCORD_PUBLIC_KEY is set but DISCORD_APPLICATION_ID"),
        ({"DISCORD_APPLICATION_ID": "1234567890"}, "DISCORD_APPLICATION_ID is set but"),
    ],
)
async def test_a_half_configured_platform_is_a_warning_that_names_what_is_missing(
    tmp_path: Path, half: dict[str, str], said: str
) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("QUOTABOT_", "SLACK_", "DISCORD_", "OPENAI_"))
    }
    env.update(QUOTABOT_DATA_DIR=str(tmp_path), QUOTABOT_HTTP_PORT="0", **half)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "bot", "serve", "--sandbox", "--no-scheduler"),
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        lines = []
        while not lines or "serving on" not in lines[-1]:
            line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
            assert line, "serve ended before it started"
            lines.append(line)
        (warning,) = [ln for ln in lines if " WARNING " in ln]
        assert said in warning
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
