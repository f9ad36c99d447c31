"""Block Kit: the few blocks quotabot draws, and Slack's limits, checked before a view goes out.

Slack refuses a whole view (``invalid_arguments``) for one text a character too long, so
texts of unknown length (channel prompts, limit lists) are cut with :func:`clip` when built,
and :func:`problems` says what in a view would be refused: the tests run it on every view the
Home tab publishes and every modal it opens. The limits are those of Slack's Block Kit
reference (blocks, block elements, composition objects, views).
"""

from __future__ import annotations

from typing import Any

Block = dict[str, Any]

MAX_BLOCKS = 100
"""Blocks in a modal or a Home tab (a message takes 50)."""
SECTION_TEXT = 3000
SECTION_FIELDS, FIELD_TEXT = 10, 2000
HEADER_TEXT = 150
CONTEXT_ELEMENTS = 10
ACTIONS_ELEMENTS = 25
BUTTON_TEXT, BUTTON_VALUE = 75, 2000
ACTION_ID = BLOCK_ID = CALLBACK_ID = 255
VIEW_TITLE = VIEW_BUTTON = 24
"""A modal's title, and its submit and close buttons."""
PRIVATE_METADATA = 3000
INPUT_LABEL = INPUT_HINT = 2000
PLACEHOLDER = 150
TEXT_INPUT = 3000
"""Characters a plain-text input takes (its ``max_length``) and its initial value holds."""
OPTIONS, OPTION_TEXT, OPTION_VALUE = 100, 75, 150


def clip(text: str, most: int) -> str:
    """``text`` cut to ``most`` characters, with an ellipsis when cut."""
    return text if len(text) <= most else text[: most - 1] + "…"


def plain(text: str, most: int = SECTION_TEXT) -> Block:
    return {"type": "plain_text", "text": clip(text, most), "emoji": True}


def mrkdwn(text: str, most: int = SECTION_TEXT) -> Block:
    return {"type": "mrkdwn", "text": clip(text, most)}


def header(text: str) -> Block:
    return {"type": "header", "text": plain(text, HEADER_TEXT)}


def section(text: str, accessory: Block | None = None) -> Block:
    block: Block = {"type": "section", "text": mrkdwn(text)}
    if accessory is not None:
        block["accessory"] = accessory
    return block


def context(text: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(text)]}


def divider() -> Block:
    return {"type": "divider"}


def button(text: str, action_id: str, value: str = "") -> Block:
    out: Block = {"type": "button", "text": plain(text, BUTTON_TEXT), "action_id": action_id}
    if value:
        out["value"] = value
    return out


def option(text: str, value: str) -> Block:
    return {"text": plain(text, OPTION_TEXT), "value": value}


def problems(view: Block) -> list[str]:
    """What in ``view`` (a modal or a Home tab) Slack would refuse; empty when nothing."""
    out: list[str] = []
    blocks = view.get("blocks", [])
    if len(blocks) > MAX_BLOCKS:
        out.append(f"{len(blocks)} blocks, more than {MAX_BLOCKS}")
    if view.get("type") == "modal":
        for key in ("title", "submit", "close"):
            _text(out, f"view {key}", view.get(key), VIEW_TITLE, need=key == "title")
    _length(out, "private_metadata", view.get("private_metadata"), PRIVATE_METADATA)
    _length(out, "callback_id", view.get("callback_id"), CALLBACK_ID)
    for n, block in enumerate(blocks):
        where = f"block {n} ({block.get('type')})"
        _length(out, f"{where} block_id", block.get("block_id"), BLOCK_ID)
        _block(out, where, block)
    return out


def _block(out: list[str], where: str, block: Block) -> None:
    kind = block.get("type")
    if kind == "section":
        if "text" not in block and "fields" not in block:
            out.append(f"{where}: neither text nor fields")
        _text(out, f"{where} text", block.get("text"), SECTION_TEXT, need=False)
        fields = block.get("fields") or []
        if len(fields) > SECTION_FIELDS:
            out.append(f"{where}: {len(fields)} fields, more than {SECTION_FIELDS}")
        for field in fields:
            _text(out, f"{where} field", field, FIELD_TEXT)
        if "accessory" in block:
            _element(out, f"{where} accessory", block["accessory"])
    elif kind == "header":
        _text(out, f"{where} text", block.get("text"), HEADER_TEXT, plain_only=True)
    elif kind == "context":
        elements = block.get("elements") or []
        if not 1 <= len(elements) <= CONTEXT_ELEMENTS:
            out.append(f"{where}: {len(elements)} elements, not 1 to {CONTEXT_ELEMENTS}")
        for element in elements:
            _text(out, f"{where} element", element, SECTION_TEXT)
    elif kind == "actions":
        elements = block.get("elements") or []
        if not 1 <= len(elements) <= ACTIONS_ELEMENTS:
            out.append(f"{where}: {len(elements)} elements, not 1 to {ACTIONS_ELEMENTS}")
        for element in elements:
            _element(out, f"{where} element", element)
    elif kind == "input":
        _text(out, f"{where} label", block.get("label"), INPUT_LABEL, plain_only=True)
        _text(out, f"{where} hint", block.get("hint"), INPUT_HINT, need=False, plain_only=True)
        _element(out, f"{where} element", block.get("element") or {})
    elif kind != "divider":
        out.append(f"{where}: a block quotabot's checker does not know")


def _element(out: list[str], where: str, element: Block) -> None:
    kind = element.get("type")
    _length(out, f"{where} action_id", element.get("action_id"), ACTION_ID)
    _text(out, f"{where} placeholder", element.get("placeholder"), PLACEHOLDER, need=False)
    if kind == "button":
        _text(out, f"{where} text", element.get("text"), BUTTON_TEXT, plain_only=True)
        _length(out, f"{where} value", element.get("value"), BUTTON_VALUE)
    elif kind == "plain_text_input":
        most = element.get("max_length", TEXT_INPUT)
        if not isinstance(most, int) or not 1 <= most <= TEXT_INPUT:
            out.append(f"{where}: max_length {most!r}, not 1 to {TEXT_INPUT}")
        _length(out, f"{where} initial_value", element.get("initial_value"), TEXT_INPUT)
    elif kind in ("static_select", "radio_buttons"):
        options = element.get("options") or []
        if not 1 <= len(options) <= OPTIONS:
            out.append(f"{where}: {len(options)} options, not 1 to {OPTIONS}")
        for o in options:
            _text(out, f"{where} option", o.get("text"), OPTION_TEXT)
            _length(out, f"{where} option value", o.get("value"), OPTION_VALUE)
        initial = element.get("initial_option")
        if initial is not None and initial not in options:
            out.append(f"{where}: initial_option is not one of its options")
    else:
        out.append(f"{where}: an element quotabot's checker does not know ({kind})")


def _text(
    out: list[str],
    where: str,
    obj: Any,
    most: int,
    *,
    need: bool = True,
    plain_only: bool = False,
) -> None:
    if obj is None:
        if need:
            out.append(f"{where}: missing")
        return
    kinds = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if not isinstance(obj, dict) or obj.get("type") not in kinds:
        out.append(f"{where}: not a {' or '.join(kinds)} text object")
        return
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        out.append(f"{where}: empty")
    elif len(text) > most:
        out.append(f"{where}: {len(text)} characters, more than {most}")


def _length(out: list[str], where: str, value: Any, most: int) -> None:
    if value is not None and len(str(value)) > most:
        out.append(f"{where}: {len(str(value))} characters, more than {most}")
