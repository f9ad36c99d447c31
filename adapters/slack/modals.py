"""The App Home's two forms: a channel's settings, and one budget limit.

    Edit / Set a limit (block_actions) -> views.open with the click's trigger_id
    Save (view_submission)              -> what was typed, read back from ``view.state``:
                                           every value is checked again by the core (the
                                           client could send anything)

A field's value is read by its block_id; a refusal goes back as ``response_action: errors``
keyed by the same block_id, which Slack shows under that field.
"""

from __future__ import annotations

from typing import Any

from adapters.slack import blocks as bk
from bot import messages
from bot.budget.policy import SETTINGS
from bot.models import ChannelSettings

EDIT_CHANNEL = "quotabot_home_edit_channel"
"""The Home's Edit button beside a channel; its value is the channel's ID."""
SET_LIMIT = "quotabot_home_set_limit"
ACTIONS = (EDIT_CHANNEL, SET_LIMIT)
"""What a block_actions may carry to reach bolt (adapters.slack.screen)."""
CHANNEL = "quotabot_channel_settings"
"""callback_id of the channel form; its private_metadata is the channel's ID."""
LIMIT = "quotabot_budget_limit"
VIEWS = (CHANNEL, LIMIT)
MODEL, PROMPT, ENABLED = "model", "system_prompt", "enabled"
SCOPE, KIND, VALUE = "scope", "kind", "value"
_ON, _OFF = "on", "off"
_ACTION = "v"
"""Each input's one element."""


def channel_form(channel: str, shown: str, now: ChannelSettings, models: list[str]) -> bk.Block:
    """``shown``: the channel as Slack draws a link to it."""
    names = models[: bk.OPTIONS]
    options = [bk.option(n, n) for n in names if len(n) <= bk.OPTION_VALUE]
    select: bk.Block = {"type": "static_select", "action_id": _ACTION, "options": options}
    if now.model in names:
        select["initial_option"] = bk.option(now.model, now.model)
    prompt: bk.Block = {
        "type": "plain_text_input",
        "action_id": _ACTION,
        "multiline": True,
        "max_length": bk.TEXT_INPUT,
    }
    if now.system_prompt:
        prompt["initial_value"] = bk.clip(now.system_prompt, bk.TEXT_INPUT)
    on, off = bk.option(messages.HOME_ON, _ON), bk.option(messages.HOME_OFF, _OFF)
    enabled = {
        "type": "radio_buttons",
        "action_id": _ACTION,
        "options": [on, off],
        "initial_option": on if now.enabled else off,
    }
    return _modal(
        CHANNEL,
        messages.MODAL_CHANNEL_TITLE,
        [
            bk.section(messages.MODAL_CHANNEL_INTRO.format(channel=shown)),
            _input(MODEL, messages.MODAL_MODEL, select),
            _input(PROMPT, messages.MODAL_PROMPT, prompt, messages.MODAL_PROMPT_HINT, True),
            _input(ENABLED, messages.MODAL_ENABLED, enabled),
        ],
        metadata=channel,
    )


def limit_form() -> bk.Block:
    kinds = [bk.option(k, k) for k in SETTINGS]
    return _modal(
        LIMIT,
        messages.MODAL_BUDGET_TITLE,
        [
            _input(
                SCOPE,
                messages.MODAL_SCOPE,
                {"type": "plain_text_input", "action_id": _ACTION, "initial_value": "workspace"},
                messages.MODAL_SCOPE_HINT,
            ),
            _input(KIND, messages.MODAL_KIND, _select(kinds)),
            _input(
                VALUE,
                messages.MODAL_VALUE,
                {"type": "plain_text_input", "action_id": _ACTION},
                messages.MODAL_VALUE_HINT,
            ),
        ],
    )


def channel_of(view: dict[str, Any]) -> str:
    return str(view.get("private_metadata") or "")


def typed(view: dict[str, Any], block_id: str) -> str | None:
    """What the form's field ``block_id`` holds: a text input's text, a choice's value; None
    when empty, or of another shape than Slack sends."""
    values = view.get("state", {}).get("values", {})
    element = values.get(block_id, {}).get(_ACTION) if isinstance(values, dict) else None
    if not isinstance(element, dict):
        return None
    if "selected_option" in element:
        chosen = element["selected_option"]
        value = chosen.get("value") if isinstance(chosen, dict) else None
    else:
        value = element.get("value")
    return value if isinstance(value, str) else None


def enabled(view: dict[str, Any]) -> bool | None:
    return {_ON: True, _OFF: False}.get(typed(view, ENABLED) or "")


def limit_field(error: str) -> str:
    """The field a ``/budget set`` refusal is about, by its words (bot.store.budgets.check,
    bot.chat.commands.check_models): the scope's, the limit's, else the value's."""
    if error.startswith(("unknown scope", "models are chosen", "a time zone is set per")):
        return SCOPE
    return KIND if error.startswith("unknown limit") else VALUE


def _modal(callback: str, title: str, blocks: list[bk.Block], *, metadata: str = "") -> bk.Block:
    view: bk.Block = {
        "type": "modal",
        "callback_id": callback,
        "title": bk.plain(title, bk.VIEW_TITLE),
        "submit": bk.plain(messages.MODAL_SAVE, bk.VIEW_BUTTON),
        "close": bk.plain(messages.MODAL_CANCEL, bk.VIEW_BUTTON),
        "blocks": blocks,
    }
    if metadata:
        view["private_metadata"] = metadata
    return view


def _input(
    block_id: str, label: str, element: bk.Block, hint: str = "", optional: bool = False
) -> bk.Block:
    block: bk.Block = {
        "type": "input",
        "block_id": block_id,
        "label": bk.plain(label, bk.INPUT_LABEL),
        "element": element,
        "optional": optional,
    }
    if hint:
        block["hint"] = bk.plain(hint, bk.INPUT_HINT)
    return block


def _select(options: list[bk.Block]) -> bk.Block:
    return {"type": "static_select", "action_id": _ACTION, "options": options}
