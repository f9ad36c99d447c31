"""Slack's AI-app surfaces ("Agents & AI Apps"): the ``assistant.threads.*`` methods, and the
events Slack sends about an assistant thread.

    assistant.threads.setStatus (channel_id, thread_ts, status)     -> "is thinking…"; "" clears
    assistant.threads.setTitle (channel_id, thread_ts, title)       -> the thread's title
    assistant.threads.setSuggestedPrompts (channel_id, thread_ts,
                                           prompts, title?)          -> up to 4 prompts

An app without the feature lacks the ``assistant:write`` scope: ``missing_scope``, as Slack
answers (set ``api.state.assistant_enabled = False``). Importing this module registers the
methods with ``fakes.slack_methods.METHODS``.
"""

from __future__ import annotations

import time
from typing import Any

from fakes.slack_events import direct_message, event_callback
from fakes.slack_methods import Context, SlackError, _channel, _required, method
from fakes.slack_state import JSON, parse_json_param
from fakes.slack_workspace import (
    DEFAULT_DM,
    DEFAULT_USER,
    DEFAULT_WORKSPACE,
    SlackWorkspace,
    new_id,
    new_ts,
)

MAX_PROMPTS = 4
TITLE_MOST = 255  # not documented; long titles are refused


def threads(ctx: Context) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (channel, thread_ts): the thread's status, title and suggested prompts now."""
    return vars(ctx.state).setdefault("assistant_threads", {})


def _thread(ctx: Context, params: JSON) -> dict[str, Any]:
    if not vars(ctx.state).get("assistant_enabled", True):
        raise SlackError("missing_scope", needed="assistant:write", provided="chat:write")
    channel = _channel(ctx, params, "channel_id")
    if not ctx.state.channels[channel].get("is_im"):
        raise SlackError("channel_not_found")  # assistant threads live in the app's DM
    ts = _required(params, "thread_ts")
    return threads(ctx).setdefault((channel, ts), {"status": "", "title": None, "prompts": []})


@method("assistant.threads.setStatus")
def set_status(ctx: Context, params: JSON) -> JSON:
    thread = _thread(ctx, params)
    if "status" not in params:
        raise SlackError("invalid_arguments")
    thread["status"] = str(params["status"])
    return {"ok": True}


@method("assistant.threads.setTitle")
def set_title(ctx: Context, params: JSON) -> JSON:
    thread = _thread(ctx, params)
    title = _required(params, "title")
    if len(title) > TITLE_MOST:
        raise SlackError("invalid_arguments")
    thread["title"] = title
    return {"ok": True}


@method("assistant.threads.setSuggestedPrompts")
def set_suggested_prompts(ctx: Context, params: JSON) -> JSON:
    thread = _thread(ctx, params)
    prompts = parse_json_param(params.get("prompts"))
    if (
        not isinstance(prompts, list)
        or not 1 <= len(prompts) <= MAX_PROMPTS
        or not all(
            isinstance(p, dict) and isinstance(p.get("title"), str) and p.get("message")
            for p in prompts
        )
    ):
        raise SlackError("invalid_arguments")
    thread["prompts"] = prompts
    return {"ok": True}


# --- what Slack sends ---------------------------------------------------------------------


def thread_started(
    *,
    user: str = DEFAULT_USER,
    channel: str = DEFAULT_DM,
    thread_ts: str | None = None,
    workspace: SlackWorkspace = DEFAULT_WORKSPACE,
    context_channel: str | None = None,
) -> JSON:
    """``assistant_thread_started``: someone opened a new thread in the assistant pane."""
    thread: JSON = {
        "user_id": user,
        "context": {"channel_id": context_channel, "team_id": workspace.team_id}
        if context_channel
        else {},
        "channel_id": channel,
        "thread_ts": thread_ts or new_ts(),
    }
    event = {"type": "assistant_thread_started", "assistant_thread": thread}
    event["event_ts"] = f"{time.time():.6f}"
    return event_callback(event, workspace=workspace, event_id=new_id("Ev", 12))


def thread_message(
    text: str,
    *,
    thread_ts: str,
    user: str = DEFAULT_USER,
    channel: str = DEFAULT_DM,
    workspace: SlackWorkspace = DEFAULT_WORKSPACE,
) -> JSON:
    """A person's message in an assistant thread: ``message.im`` with the thread's ts."""
    return direct_message(
        text, user=user, channel=channel, thread_ts=thread_ts, workspace=workspace
    )
