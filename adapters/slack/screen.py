"""What of a signed Slack request reaches bolt: only the kinds quotabot listens to, in the
shapes bolt can take.

    signed body -> parsed by bolt's request -> problem(): 400, one short line
                -> unhandled(): acknowledged (200), one short line, bolt never sees it
                -> bolt's dispatch -> quotabot's listeners

Slack retries a 5xx three times, so a body bolt raised on cost four failures. Bolt raised on
JSON nested deeper than the recursion limit; on ``view``, ``actions`` or ``user`` of another
type than Slack sends, in its matchers and even in the warning it logs for requests nobody
listens to (which also wrote parts of those payloads, what a user typed, to the log). Requests
of other kinds than those below are acknowledged without bolt.
"""

from __future__ import annotations

import re
from typing import Any

from adapters.slack import controls, modals, more
from bot.ids import usable_id
from bot.web import MAX_DEPTH, too_deep

EVENTS = ("app_mention", "message")
"""The Events API events quotabot answers messages of."""
ASSISTANT_EVENTS = ("assistant_thread_started", "assistant_thread_context_changed")
"""Slack's assistant pane's (adapters.slack.assistant)."""
HOME_EVENTS = ("app_home_opened",)
"""The App Home tab's (adapters.slack.home); its buttons and forms are these:"""
HOME_ACTIONS, HOME_VIEWS = modals.ACTIONS, modals.VIEWS
ACTIONS = HOME_ACTIONS + more.ACTIONS + controls.ACTIONS
VIEWS = HOME_VIEWS + more.VIEWS
"""Every button and form quotabot listens to (the Home tab's; asking for more budget's; Stop,
👍 and 👎 on answers)."""
COMMANDS = ("/ask", "/usage", "/budget", "/digest")
SHORTCUTS = ("transcribe",)
"""Message shortcuts, by callback_id."""
_SHORTCUT_FIELDS = {
    "message": dict,
    "user": dict,
    "channel": dict,
    "callback_id": str,
    "trigger_id": str,
    "response_url": str,
}


def problem(body: Any) -> str | None:
    """Why bolt cannot take this parsed body (no part of it in the answer), or None."""
    if not isinstance(body, dict):
        return f"a JSON {type(body).__name__}, not an object"
    if too_deep(body):
        return f"nested deeper than {MAX_DEPTH} levels"
    kind, event = body.get("type"), body.get("event")
    # bolt's middleware reads body.get("event", {}).get(...) of every request, and
    # body["event"]["type"] of every event_callback.
    if "event" in body and not isinstance(event, dict):
        return "an event that is not an object"
    if kind == "event_callback" and not isinstance((event or {}).get("type"), str):
        return "an event_callback without an event and its type"
    if (event or {}).get("type") in ASSISTANT_EVENTS:
        thread = event.get("assistant_thread")  # type: ignore[union-attr]
        if not (
            isinstance(thread, dict)
            and usable_id(thread.get("channel_id"))
            and usable_id(thread.get("thread_ts"))
        ):
            return "an assistant thread event without a usable channel_id and thread_ts"
    for key in ("team_id", "api_app_id", "event_id"):
        if key in body and not usable_id(body[key]):
            return f"an unusable {key}"
    if kind == "message_action" and body.get("callback_id") in SHORTCUTS:
        bad = [k for k, t in _SHORTCUT_FIELDS.items() if not isinstance(body.get(k), t)]
        if bad:
            return f"a message shortcut without a usable {', '.join(bad)}"
    if kind in ("block_actions", "view_submission"):
        return _interactive_problem(body)
    return None


def _interactive_problem(body: dict[str, Any]) -> str | None:
    """The shapes bolt and adapters.slack.home read of a click or a form sent."""
    user, team = body.get("user"), body.get("team")
    if not isinstance(user, dict) or not usable_id(user.get("id")):
        return f"a {body['type']} without a usable user"
    if team is not None and not (isinstance(team, dict) and usable_id(team.get("id"))):
        return f"a {body['type']} with an unusable team"
    if body["type"] == "block_actions":
        actions = body.get("actions")
        if not isinstance(body.get("trigger_id"), str) or not (
            isinstance(actions, list)
            and actions
            and all(isinstance(a, dict) and isinstance(a.get("action_id"), str) for a in actions)
        ):
            return "a block_actions without a trigger_id and its actions"
        return None
    view = body.get("view")
    if not (
        isinstance(view, dict)
        and isinstance(view.get("callback_id"), str)
        and isinstance(view.get("state"), dict)
        and isinstance(view.get("private_metadata", ""), str)
    ):
        return "a view_submission without a usable view"
    return None


def unhandled(body: dict[str, Any]) -> str | None:
    """What kind of request this is when quotabot has no listener for it; None when it has
    (or bolt answers it itself: URL verification and Slack's SSL check)."""
    if "ssl_check" in body or body.get("type") == "url_verification":
        return None
    if "command" in body:
        command = body["command"]
        return None if command in COMMANDS else f"command {_short(command)}"
    kind = body.get("type")
    if kind == "event_callback":
        event = body["event"]["type"]
        known = EVENTS + HOME_EVENTS + ASSISTANT_EVENTS
        return None if event in known else f"{_short(event)} event"
    if kind == "message_action" and body.get("callback_id") in SHORTCUTS:
        return None
    if kind == "block_actions" and all(a["action_id"] in ACTIONS for a in body["actions"]):
        return None
    if kind == "view_submission" and body["view"]["callback_id"] in VIEWS:
        return None
    return _short(kind)


def _short(value: object) -> str:
    """A kind's name for a log line, if it looks like one of Slack's (``block_actions``,
    ``/ask``): the field could hold anything."""
    if isinstance(value, str) and _NAME.fullmatch(value):
        return value
    return f"unnamed ({type(value).__name__})"


_NAME = re.compile(r"/?[a-z][a-z0-9_-]{0,39}")
