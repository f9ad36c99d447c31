"""Slack's views: the Web API methods of the App Home and modals, and the payloads Slack sends
about them (``app_home_opened``, ``block_actions``, ``view_submission``).

    views.publish (user_id, view)   -> the user's Home view; ``{"ok": true, "view": ...}``
    views.open (trigger_id, view)   -> a modal; a trigger opens one view, once
    views.update (view_id, view)    -> a view replaced

Importing this module registers the methods with ``fakes.slack_methods.METHODS``.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from fakes.slack_methods import Context, SlackError, _required, method
from fakes.slack_state import JSON, parse_json_param
from fakes.slack_workspace import (
    DEFAULT_USER,
    DEFAULT_WORKSPACE,
    SlackWorkspace,
    new_id,
    new_trigger_id,
)

MAX_BLOCKS = 100


def _views(ctx: Context) -> dict[str, Any]:
    """What the fake's state keeps of views: those shown, by ID, and triggers used."""
    return vars(ctx.state).setdefault("views", {"by_id": {}, "used_triggers": set()})


def _view(ctx: Context, params: JSON, kind: str) -> JSON:
    view = parse_json_param(params.get("view"))
    if not isinstance(view, dict) or view.get("type") != kind:
        raise SlackError("invalid_arguments")
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
        raise SlackError(
            "invalid_arguments",
            response_metadata={"messages": [f"[ERROR] no more than {MAX_BLOCKS} items allowed"]},
        )
    shown = {
        "id": new_id("V", 11),
        "team_id": ctx.state.workspace.team_id,
        "app_id": ctx.state.workspace.api_app_id,
        "bot_id": ctx.state.workspace.bot_id,
        "private_metadata": "",
        "callback_id": "",
        "state": {"values": {}},
        "hash": hashlib.sha1(json.dumps(view).encode()).hexdigest()[:24],
        **view,
    }
    _views(ctx)["by_id"][shown["id"]] = shown
    return shown


@method("views.publish")
def views_publish(ctx: Context, params: JSON) -> JSON:
    user = _required(params, "user_id", "invalid_arguments")
    if ctx.state.user(user) is None:
        raise SlackError("user_not_found")
    return {"ok": True, "view": _view(ctx, params, "home")}


@method("views.open")
def views_open(ctx: Context, params: JSON) -> JSON:
    trigger = _required(params, "trigger_id", "invalid_arguments")
    used = _views(ctx)["used_triggers"]
    if trigger in used:
        raise SlackError("expired_trigger_id")
    view = _view(ctx, params, "modal")
    used.add(trigger)
    return {"ok": True, "view": view}


@method("views.update")
def views_update(ctx: Context, params: JSON) -> JSON:
    view_id = _required(params, "view_id", "invalid_arguments")
    if view_id not in _views(ctx)["by_id"]:
        raise SlackError("not_found")
    kind = _views(ctx)["by_id"][view_id]["type"]
    del _views(ctx)["by_id"][view_id]
    shown = _view(ctx, params, kind)
    _views(ctx)["by_id"].pop(shown["id"])
    shown["id"] = view_id
    _views(ctx)["by_id"][view_id] = shown
    return {"ok": True, "view": shown}


# --- what Slack sends ----------------------------------------------------------------------


def app_home_opened(user: str = DEFAULT_USER, *, tab: str = "home") -> JSON:
    """The inner event; wrap it with ``fakes.slack_events.event_callback``."""
    return {
        "type": "app_home_opened",
        "user": user,
        "channel": new_id("D", 11),
        "tab": tab,
        "event_ts": f"{time.time():.6f}",
    }


def block_actions(
    action_id: str,
    value: str = "",
    *,
    user: str = DEFAULT_USER,
    view: JSON | None = None,
    workspace: SlackWorkspace = DEFAULT_WORKSPACE,
) -> JSON:
    """A button clicked in ``view`` (the Home view published, say)."""
    action: JSON = {
        "type": "button",
        "action_id": action_id,
        "block_id": new_id("B", 6),
        "text": {"type": "plain_text", "text": "Edit", "emoji": True},
        "action_ts": f"{time.time():.6f}",
    }
    if value:
        action["value"] = value
    return {
        **_interactive("block_actions", user, workspace),
        "container": {"type": "view", "view_id": (view or {}).get("id", new_id("V", 11))},
        "trigger_id": new_trigger_id(),
        "view": view or {},
        "actions": [action],
    }


def view_submission(
    view: JSON,
    values: dict[str, JSON],
    *,
    user: str = DEFAULT_USER,
    workspace: SlackWorkspace = DEFAULT_WORKSPACE,
) -> JSON:
    """``view`` (as views.open answered it) sent with ``values``: block_id -> the state of its
    one element, as :func:`typed` and :func:`chosen` make them."""
    state = {block: {_action_of(view, block): element} for block, element in values.items()}
    return {
        **_interactive("view_submission", user, workspace),
        "trigger_id": new_trigger_id(),
        "view": {**view, "state": {"values": state}},
        "response_urls": [],
    }


def typed(text: str | None) -> JSON:
    return {"type": "plain_text_input", "value": text}


def chosen(value: str, kind: str = "static_select") -> JSON:
    option = {"text": {"type": "plain_text", "text": value, "emoji": True}, "value": value}
    return {"type": kind, "selected_option": option}


def _action_of(view: JSON, block_id: str) -> str:
    for block in view.get("blocks", []):
        if block.get("block_id") == block_id:
            return str(block.get("element", {}).get("action_id", "action"))
    return "action"


def _interactive(kind: str, user: str, workspace: SlackWorkspace) -> JSON:
    return {
        "type": kind,
        "token": workspace.verification_token,
        "api_app_id": workspace.api_app_id,
        "team": {"id": workspace.team_id, "domain": workspace.team_domain},
        "user": {
            "id": user,
            "username": user.lower(),
            "name": user.lower(),
            "team_id": workspace.team_id,
        },
        "is_enterprise_install": False,
        "enterprise": None,
    }
