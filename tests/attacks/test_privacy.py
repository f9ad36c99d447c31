"""No prompt, answer, event payload or file name in any log line, at any level: a running
``quotabot serve`` at ``QUOTABOT_LOG_LEVEL=DEBUG``, and with ``-v``, is sent honest and hostile
requests that carry marked text, and its whole log is searched for the marks.

The marks go where people's words go: a mention's text and its blocks, a file's name, a
slash command's text, a Discord /ask prompt; and into hostile bodies that are logged when
refused (a signed body that is not UTF-8, JSON nested too deep, a field that ``int()``
quotes, interactivity payloads bolt used to log parts of).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from fakes import slack_events as ev
from fakes.discord_api import interaction, option
from fakes.slack_workspace import DEFAULT_CHANNEL
from tests.attacks.serve import SECRET, SIGNER, Served, serving

MARK = "ZQXJ"
"""In every marked text; nothing else quotabot or its libraries write contains it."""


async def _signed(http: httpx.AsyncClient, server: Served, body: bytes, ctype: str) -> int:
    headers = {"Content-Type": ctype, **ev.signed_request(body, SECRET)}
    return (await http.post(server.slack_url, content=body, headers=headers)).status_code


async def _honest(http: httpx.AsyncClient, server: Served) -> list[str]:
    """Marked requests that are answered; the answers, which must not be logged either."""
    answers = []
    mention = ev.app_mention(f"q {MARK}prompt tell me more")
    pdf = server.slack.add_file(b"%PDF-1.4", f"{MARK}file-notes.pdf", "application/pdf")
    mention = server.slack.seed_event(ev.with_files(mention, [pdf]))
    assert (await ev.post_event(http, server.slack_url, mention, SECRET)).status_code == 200
    command = ev.slash_command("/ask", f"q {MARK}command question")
    assert (await ev.post_command(http, server.slack_url, command, SECRET)).status_code == 200
    ask = interaction("ask", [option("prompt", f"q {MARK}discord question")])
    response = await SIGNER.post(http, server.discord_url, ask)
    server.discord.acknowledged(ask, response.json())
    await server.discord.wait_for(lambda: bool(server.discord.thread(ask["token"])), 10)
    answers += [m.content for m in server.discord.thread(ask["token"])]
    for _ in range(500):
        thread = server.slack.messages(DEFAULT_CHANNEL, mention["event"]["ts"])
        if any(t.startswith("Sandbox") for t in thread):
            answers += [t for t in thread if t.startswith("Sandbox")]
            break
        await asyncio.sleep(0.02)
    assert len(answers) == 2, answers
    return answers


async def _hostile(http: httpx.AsyncClient, server: Served) -> None:
    """Marked bodies that are refused, or acknowledged and dropped."""
    not_utf8 = f'{{"type":"event_callback","text":"{MARK}nonutf '.encode() + b'\xff"}'
    assert await _signed(http, server, not_utf8, "application/json") == 400
    deep = ("[" * 100 + json.dumps(f"{MARK}deep") + "]" * 100).encode()
    assert await _signed(http, server, deep, "application/json") == 400
    deeper = ("[" * 2000 + json.dumps(f"{MARK}deeper") + "]" * 2000).encode()
    assert await _signed(http, server, deeper, "application/json") == 400
    who = {"user": {"id": "U1"}, "team": {"id": "T1"}, "trigger_id": "1.2.3"}
    for payload, status in (
        ({"type": "dialog_submission", "callback_id": "x", "submission": {"a": f"{MARK}t"}}, 200),
        ({"type": "block_suggestion", "action_id": "a", "value": f"{MARK}typing"}, 200),
        # Clicks and forms nobody listens to: acknowledged; without a user: refused.
        ({**who, "type": "block_actions", "actions": [{"action_id": "a", "value": MARK}]}, 200),
        ({"type": "block_actions", "actions": [{"action_id": "a", "value": f"{MARK}c"}]}, 400),
        ({**who, "type": "view_submission", "view": {"callback_id": "v", "state": {}}}, 200),
        ({"type": "view_submission", "view": {"callback_id": "v", "state": {"x": MARK}}}, 400),
        ({"type": f"{MARK}kind"}, 200),
    ):
        form = urlencode({"payload": json.dumps(payload)}).encode()
        got = await _signed(http, server, form, "application/x-www-form-urlencoded")
        assert got == status, (payload["type"], got)
    # /ask without a user: ignored, its text unlogged.
    form = urlencode({"command": "/ask", "text": f"{MARK}nouser", "channel_id": "C1"}).encode()
    assert await _signed(http, server, form, "application/x-www-form-urlencoded") < 500
    # Discord: a permissions field int() cannot read, an id that is no snowflake.
    for bad in ({"member": {"permissions": f"{MARK}perm"}}, {"id": f"{MARK}id"}):
        payload = {**interaction("ask", [option("prompt", f"q {MARK}bad")]), **bad}
        if "member" in bad:
            payload["member"] = {**payload.get("member", {}), **bad["member"]}
            payload["member"].setdefault("user", {"id": "1"})
        response = await SIGNER.post(http, server.discord_url, payload)
        assert response.status_code < 500
    body = f'{{"type": 2, "x": "{MARK}notjson'.encode()
    headers = SIGNER.headers(body)
    assert (await http.post(server.discord_url, content=body, headers=headers)).status_code == 400
    # Unsigned, and too large.
    assert (await http.post(server.slack_url, content=MARK.encode() * 10)).status_code == 401


@pytest.mark.parametrize("verbose", [False, True], ids=["QUOTABOT_LOG_LEVEL=DEBUG", "-v"])
async def test_no_prompt_answer_payload_or_file_name_is_ever_logged(
    tmp_path: Path, verbose: bool
) -> None:
    async with (
        serving(tmp_path, verbose=verbose, QUOTABOT_LOG_LEVEL="DEBUG") as server,
        httpx.AsyncClient(timeout=15) as http,
    ):
        answers = await _honest(http, server)
        await _hostile(http, server)
        await server.settled()
    log = server.logged()
    assert " DEBUG " in log  # the level is on: there was something to leak
    leaks = [line[:300] for line in log.splitlines() if MARK.lower() in line.lower()]
    assert leaks == [], leaks
    for answer in answers:  # the sandbox's words, after its echo of the prompt
        tail = re.sub(r"\s+", " ", answer)[-40:]
        assert tail not in log, tail
