"""Events API and slash-command requests, built and signed the way Slack sends them.

    payload = slack_events.app_mention("what is 2+2?", user="U1", channel="C1")
    response = await slack_events.post_event(client, url, payload, SIGNING_SECRET)

Events are an ``event_callback`` envelope around the event, posted as compact JSON with ``/``
escaped as ``\\/`` (Slack's encoder does that: an app that re-serialises the JSON before
checking the signature fails, as it would in production). Slash commands are form-encoded.
Both carry ``X-Slack-Request-Timestamp`` and ``X-Slack-Signature: v0=<hex HMAC-SHA256 of
"v0:{timestamp}:{body}">`` (docs.slack.dev/authentication/verifying-requests-from-slack), and a
redelivery adds ``X-Slack-Retry-Num`` / ``X-Slack-Retry-Reason``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import httpx

from fakes.slack_workspace import (
    DEFAULT_CHANNEL,
    DEFAULT_DM,
    DEFAULT_USER,
    DEFAULT_WORKSPACE,
    SlackWorkspace,
    new_id,
    new_trigger_id,
    new_ts,
)

JSON = dict[str, Any]

_USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"
_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")


# --- signing -------------------------------------------------------------------------------


def signature(body: bytes, secret: str, timestamp: int) -> str:
    """``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}`` keyed with the signing secret."""
    base = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_request(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """The two signature headers for ``body``; ``timestamp`` defaults to now (Slack's verifiers
    reject ones more than five minutes off)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": signature(body, secret, ts),
    }


def encode_event(payload: JSON) -> bytes:
    """JSON as Slack writes it: no spaces, non-ASCII as ``\\uXXXX``, ``/`` as ``\\/``."""
    return json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode()


def encode_command(form: dict[str, str]) -> bytes:
    return urlencode(form).encode()


async def post_event(
    client: httpx.AsyncClient,
    url: str,
    payload: JSON | bytes,
    secret: str,
    *,
    retry_num: int | None = None,
    retry_reason: str = "http_timeout",
    timestamp: int | None = None,
    bad_signature: bool = False,
) -> httpx.Response:
    """POST an Events API payload (a dict, or raw bytes to send as is) to ``url``, signed.
    ``retry_num`` makes it a redelivery; ``bad_signature`` signs with the wrong secret."""
    body = payload if isinstance(payload, bytes) else encode_event(payload)
    headers = _headers(body, secret, "application/json", timestamp, bad_signature)
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = retry_reason
    return await client.post(url, content=body, headers=headers)


async def post_command(
    client: httpx.AsyncClient,
    url: str,
    form: dict[str, str],
    secret: str,
    *,
    timestamp: int | None = None,
    bad_signature: bool = False,
) -> httpx.Response:
    """POST a slash command (from ``slash_command``) to ``url``, form-encoded and signed."""
    body = encode_command(form)
    headers = _headers(body, secret, "application/x-www-form-urlencoded", timestamp, bad_signature)
    return await client.post(url, content=body, headers=headers)


def _headers(
    body: bytes, secret: str, content_type: str, timestamp: int | None, bad_signature: bool
) -> dict[str, str]:
    signing_secret = secret + "-wrong" if bad_signature else secret
    return {
        "Content-Type": content_type,
        "User-Agent": _USER_AGENT,
        **signed_request(body, signing_secret, timestamp),
    }


# --- events --------------------------------------------------------------------------------


def event_callback(
    event: JSON,
    *,
    workspace: SlackWorkspace = DEFAULT_WORKSPACE,
    event_id: str | None = None,
    event_time: int | None = None,
) -> JSON:
    """The envelope every Events API event arrives in. ``authorizations`` names the bot user,
    the same one ``FakeSlackAPI``'s ``auth.test`` answers with."""
    ws = workspace
    context = {"et": event.get("type"), "tid": ws.team_id, "aid": ws.api_app_id}
    if "channel" in event:
        context["cid"] = event["channel"]
    return {
        "token": ws.verification_token,
        "team_id": ws.team_id,
        **({"enterprise_id": ws.enterprise_id} if ws.enterprise_id else {}),
        "api_app_id": ws.api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or new_id("Ev", 12),
        "event_time": int(time.time()) if event_time is None else event_time,
        "authorizations": [
            {
                "enterprise_id": ws.enterprise_id,
                "team_id": ws.team_id,
                "user_id": ws.bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": "4-" + base64.urlsafe_b64encode(json.dumps(context).encode()).decode(),
    }


def url_verification(
    challenge: str | None = None, *, workspace: SlackWorkspace = DEFAULT_WORKSPACE
) -> JSON:
    """Sent once when the Request URL is saved; the app must echo ``challenge``."""
    return {
        "token": workspace.verification_token,
        "challenge": challenge or secrets.token_urlsafe(36),
        "type": "url_verification",
    }


def app_mention(
    text: str,
    *,
    user: str = DEFAULT_USER,
    channel: str = DEFAULT_CHANNEL,
    ts: str | None = None,
    thread_ts: str | None = None,
    parent_user_id: str | None = None,
    workspace: SlackWorkspace = DEFAULT_WORKSPACE,
) -> JSON:
    """``app_mention``: someone wrote ``<@bot>`` in a channel. Slack's text always holds the
    mention; it is put in front when ``text`` lacks it."""
    mention = f"<@{workspace.bot_user_id}>"
    if mention not in text:
        text = f"{mention} {text}"
    event = _user_message(text, user, channel, ts, thread_ts, parent_user_id, workspace)
    event["type"] = "app_mention"
    return event_callback(event, workspace=workspace)


def message(
    text: str,
    *,
    user: str = DEFAULT_USER,
    channel: str = DEFAULT_CHANNEL,
    ts: str | None = None,
    thread_ts: str | None = None,
    parent_user_id: str | None = None,
    channel_type: str | None = None,
    workspace: SlackWorkspace = DEFAULT_WORKSPACE,
) -> JSON:
    """A person's ``message`` (``message.channels``/``.groups``/``.im``/``.mpim``, told apart by
    ``channel_type``, which follows the channel ID unless given). ``thread_ts`` makes it a
    thread reply."""
    event = _user_message(text, user, channel, ts, thread_ts, parent_user_id, workspace)
    event["channel_type"] = channel_type or _channel_type(channel)
    return event_callback(event, workspace=workspace)


def direct_message(
    text: str,
    *,
    user: str = DEFAULT_USER,
    channel: str = DEFAULT_DM,
    ts: str | None = None,
    thread_ts: str | None = None,
    workspace: SlackWorkspace = DEFAULT_WORKSPACE,
) -> JSON:
    """``message.im``: a message in the bot's direct-message channel (``D...``)."""
    return message(
        text,
        user=user,
        channel=channel,
        ts=ts,
        thread_ts=thread_ts,
        channel_type="im",
        workspace=workspace,
    )


def thread_reply(
    text: str,
    *,
    thread_ts: str,
    user: str = DEFAULT_USER,
    channel: str = DEFAULT_CHANNEL,
    parent_user_id: str | None = None,
    ts: str | None = None,
    workspace: SlackWorkspace = DEFAULT_WORKSPACE,
) -> JSON:
    """A reply in the thread under ``thread_ts`` (no mention of the bot)."""
    return message(
        text,
        user=user,
        channel=channel,
        ts=ts,
        thread_ts=thread_ts,
        parent_user_id=parent_user_id or workspace.bot_user_id,
        workspace=workspace,
    )


def bot_message(
    text: str,
    *,
    channel: str = DEFAULT_CHANNEL,
    bot_id: str | None = None,
    user: str | None = None,
    app_id: str | None = None,
    legacy: bool = False,
    ts: str | None = None,
    thread_ts: str | None = None,
    workspace: SlackWorkspace = DEFAULT_WORKSPACE,
) -> JSON:
    """A message written by an app: by default this bot's own (the echo every bot must
    ignore). Apps' messages carry ``bot_id``, ``app_id``, the bot user and no subtype;
    ``legacy=True`` gives the ``subtype: bot_message`` form of webhooks and old integrations,
    which has ``bot_id`` and ``username`` but no ``user``."""
    ws = workspace
    ts = ts or new_ts()
    event: JSON = {
        "type": "message",
        "text": text,
        "ts": ts,
        "bot_id": bot_id or ws.bot_id,
        "channel": channel,
        "event_ts": ts,
        "channel_type": _channel_type(channel),
    }
    if legacy:
        event.update(subtype="bot_message", username="legacy-integration")
    else:
        event.update(
            user=user or ws.bot_user_id,
            app_id=app_id or ws.api_app_id,
            team=ws.team_id,
            blocks=_rich_text(text),
            bot_profile={
                "id": event["bot_id"],
                "app_id": app_id or ws.api_app_id,
                "name": ws.bot_name,
                "deleted": False,
                "team_id": ws.team_id,
            },
        )
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    return event_callback(event, workspace=workspace)


def message_changed(
    text: str,
    *,
    previous_text: str,
    message_ts: str,
    user: str = DEFAULT_USER,
    channel: str = DEFAULT_CHANNEL,
    thread_ts: str | None = None,
    workspace: SlackWorkspace = DEFAULT_WORKSPACE,
) -> JSON:
    """``message`` with ``subtype: message_changed``: the message ``message_ts`` was edited
    to ``text``. The event's own ``ts`` is the edit's; the message keeps its ts."""
    ts = new_ts()
    edited = _message_body(text, user, message_ts, thread_ts, workspace)
    edited["edited"] = {"user": user, "ts": ts}
    previous = _message_body(previous_text, user, message_ts, thread_ts, workspace)
    event: JSON = {
        "type": "message",
        "subtype": "message_changed",
        "message": edited,
        "previous_message": previous,
        "channel": channel,
        "hidden": True,
        "ts": ts,
        "event_ts": ts,
        "channel_type": _channel_type(channel),
    }
    return event_callback(event, workspace=workspace)


def _message_body(
    text: str, user: str, ts: str, thread_ts: str | None, workspace: SlackWorkspace
) -> JSON:
    body: JSON = {
        "type": "message",
        "text": text,
        "user": user,
        "team": workspace.team_id,
        "ts": ts,
        "blocks": _rich_text(text),
    }
    if thread_ts is not None:
        body["thread_ts"] = thread_ts
    return body


def _user_message(
    text: str,
    user: str,
    channel: str,
    ts: str | None,
    thread_ts: str | None,
    parent_user_id: str | None,
    workspace: SlackWorkspace,
) -> JSON:
    ts = ts or new_ts()
    event: JSON = {
        "type": "message",
        "client_msg_id": str(uuid.uuid4()),
        "text": text,
        "user": user,
        "ts": ts,
        "blocks": _rich_text(text),
        "team": workspace.team_id,
        "channel": channel,
        "event_ts": ts,
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
        if parent_user_id is not None:
            event["parent_user_id"] = parent_user_id
    return event


def _channel_type(channel: str) -> str:
    return {"D": "im", "G": "group"}.get(channel[:1], "channel")


def _rich_text(text: str) -> list[JSON]:
    """The ``rich_text`` block Slack's clients attach to what people type; mentions become
    ``user`` elements."""
    elements: list[JSON] = []
    pos = 0
    for match in _MENTION.finditer(text):
        if match.start() > pos:
            elements.append({"type": "text", "text": text[pos : match.start()]})
        elements.append({"type": "user", "user_id": match.group(1)})
        pos = match.end()
    if pos < len(text):
        elements.append({"type": "text", "text": text[pos:]})
    return [
        {
            "type": "rich_text",
            "block_id": secrets.token_urlsafe(4)[:5],
            "elements": [{"type": "rich_text_section", "elements": elements}],
        }
    ]


# --- slash commands ------------------------------------------------------------------------


def slash_command(
    command: str = "/ask",
    text: str = "",
    *,
    user_id: str = DEFAULT_USER,
    user_name: str | None = None,
    channel_id: str = DEFAULT_CHANNEL,
    channel_name: str | None = None,
    response_url: str = "https://hooks.slack.com/commands/T0QB0TTEST/1/fake",
    trigger_id: str | None = None,
    workspace: SlackWorkspace = DEFAULT_WORKSPACE,
) -> dict[str, str]:
    """The form fields of a slash command, in Slack's order. Give ``response_url`` from
    ``FakeSlackAPI.response_url(id)`` to catch what the app posts back."""
    ws = workspace
    kind = {"D": "directmessage", "G": "privategroup"}
    form = {
        "token": ws.verification_token,
        "team_id": ws.team_id,
        "team_domain": ws.team_domain,
    }
    if ws.enterprise_id:
        form.update(enterprise_id=ws.enterprise_id, enterprise_name="Quotabot Org")
    form.update(
        channel_id=channel_id,
        channel_name=channel_name or kind.get(channel_id[:1], f"channel-{channel_id.lower()}"),
        user_id=user_id,
        user_name=user_name or user_id.lower(),
        command=command,
        text=text,
        api_app_id=ws.api_app_id,
        is_enterprise_install="false",
        response_url=response_url,
        trigger_id=trigger_id or new_trigger_id(),
    )
    return form


# --- files and shortcuts -------------------------------------------------------------------


def with_files(payload: JSON, files: list[JSON]) -> JSON:
    """The event with ``files`` shared in it, as Slack sends a post with attachments: a
    ``message`` becomes subtype ``file_share``; an ``app_mention`` keeps its type."""
    event = payload["event"]
    event["files"] = files
    event["upload"] = False
    if event["type"] == "message":
        event["subtype"] = "file_share"
        event["display_as_bot"] = False
    return payload


def message_shortcut(
    message: JSON,
    *,
    callback_id: str = "transcribe",
    user: str = DEFAULT_USER,
    channel: str = DEFAULT_CHANNEL,
    response_url: str = "https://hooks.slack.com/app/T0QB0TTEST/1/fake",
    workspace: SlackWorkspace = DEFAULT_WORKSPACE,
) -> JSON:
    """The ``message_action`` payload of a message shortcut used on ``message`` (an event's
    inner message, e.g. ``payload["event"]``)."""
    return {
        "type": "message_action",
        "token": workspace.verification_token,
        "action_ts": f"{time.time():.6f}",
        "team": {"id": workspace.team_id, "domain": workspace.team_domain},
        "user": {"id": user, "username": user.lower(), "team_id": workspace.team_id},
        "channel": {"id": channel, "name": f"channel-{channel.lower()}"},
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": callback_id,
        "trigger_id": new_trigger_id(),
        "response_url": response_url,
        "message_ts": message["ts"],
        "message": {k: v for k, v in message.items() if k not in ("channel", "event_ts")},
    }


async def post_interactivity(
    client: httpx.AsyncClient, url: str, payload: JSON, secret: str
) -> httpx.Response:
    """POST an interactivity payload as Slack does: form-encoded ``payload=<JSON>``, signed."""
    body = urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()
    headers = _headers(body, secret, "application/x-www-form-urlencoded", None, False)
    return await client.post(url, content=body, headers=headers)
