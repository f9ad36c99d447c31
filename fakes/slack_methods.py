"""The Slack Web API methods a chat bot calls, answered as Slack answers them.

Each handler takes the call's parameters (query string and body merged; form values are
strings, JSON values keep their types) and returns the JSON body, or raises ``SlackError`` for an
``{"ok": false, "error": ...}`` answer. Error codes are the ones Slack documents for each
method (docs.slack.dev/reference/methods/...); parameters are the ones slack-sdk's
``AsyncWebClient`` sends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fakes.slack_state import (
    JSON,
    Ephemeral,
    FakeMessage,
    SlackState,
    Upload,
    parse_json_param,
)
from fakes.slack_workspace import new_id, new_ts


class SlackError(Exception):
    """An ``{"ok": false, "error": error, **extra}`` answer (HTTP 200, as Slack does)."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra

    def body(self) -> JSON:
        return {"ok": False, "error": self.error, **self.extra}


@dataclass
class Context:
    state: SlackState
    base_url: str
    streaming_supported: bool
    streaming_error: str


Handler = Callable[[Context, JSON], JSON]
METHODS: dict[str, Handler] = {}


def method(name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        METHODS[name] = handler
        return handler

    return register


# --- parameter helpers ---------------------------------------------------------------------


def _str(params: JSON, name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    return str(value)


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)


def _required(params: JSON, name: str, error: str = "invalid_arguments") -> str:
    value = _str(params, name)
    if value is None:
        raise SlackError(error)
    return value


def _channel(ctx: Context, params: JSON, name: str = "channel") -> str:
    """The conversation a call names; a user ID means the bot's DM with that user."""
    channel_id = _required(params, name, "channel_not_found")
    if channel_id[:1] in ("U", "W"):
        return ctx.state.dm_channel_for(channel_id)
    if ctx.state.channel(channel_id) is None:
        raise SlackError("channel_not_found")
    return channel_id


def _postable(ctx: Context, params: JSON) -> str:
    channel_id = _channel(ctx, params)
    if ctx.state.channels[channel_id].get("is_archived"):
        raise SlackError("is_archived")
    return channel_id


def _blocks(params: JSON) -> list[JSON] | None:
    blocks = parse_json_param(params.get("blocks"))
    return blocks if isinstance(blocks, list) else None


def _message_text(params: JSON) -> str:
    return _str(params, "text") or _str(params, "markdown_text") or ""


def _stream_text(params: JSON) -> str:
    """Text a stream call adds: ``markdown_text`` and any ``markdown_text`` chunks."""
    parts = [_str(params, "markdown_text") or ""]
    chunks = parse_json_param(params.get("chunks")) or []
    for chunk in chunks if isinstance(chunks, list) else []:
        if isinstance(chunk, dict) and chunk.get("type") == "markdown_text":
            parts.append(str(chunk.get("text", "")))
    return "".join(parts)


def _existing(ctx: Context, channel: str, ts: str) -> FakeMessage:
    """The message ``ts`` in ``channel``, or Slack's message_not_found."""
    message = ctx.state.find(channel, ts)
    if message is None:
        raise SlackError("message_not_found")
    return message


def _own(ctx: Context, message: FakeMessage, error: str) -> None:
    if message.bot_id != ctx.state.workspace.bot_id:
        raise SlackError(error)


def _post(ctx: Context, channel: str, text: str, params: JSON, **fields: Any) -> FakeMessage:
    ws = ctx.state.workspace
    metadata = parse_json_param(params.get("metadata"))
    return ctx.state.add_message(
        channel,
        text,
        user=ws.bot_user_id,
        bot_id=ws.bot_id,
        app_id=ws.api_app_id,
        thread_ts=_str(params, "thread_ts"),
        blocks=_blocks(params),
        metadata=metadata if isinstance(metadata, dict) else None,
        **fields,
    )


# --- methods -------------------------------------------------------------------------------


@method("auth.test")
def auth_test(ctx: Context, params: JSON) -> JSON:
    ws = ctx.state.workspace
    out: JSON = {
        "ok": True,
        "url": f"https://{ws.team_domain}.slack.com/",
        "team": ws.team_name,
        "user": ws.bot_name,
        "team_id": ws.team_id,
        "user_id": ws.bot_user_id,
        "bot_id": ws.bot_id,
        "is_enterprise_install": False,
    }
    if ws.enterprise_id:
        out["enterprise_id"] = ws.enterprise_id
    return out


@method("chat.postMessage")
def chat_post_message(ctx: Context, params: JSON) -> JSON:
    channel = _postable(ctx, params)
    text = _message_text(params)
    if not text and not _blocks(params) and not params.get("attachments"):
        raise SlackError("no_text")
    message = _post(
        ctx, channel, text, params, reply_broadcast=_bool(params.get("reply_broadcast"))
    )
    return {
        "ok": True,
        "channel": channel,
        "ts": message.ts,
        "message": ctx.state.message_json(message),
    }


@method("chat.update")
def chat_update(ctx: Context, params: JSON) -> JSON:
    channel = _channel(ctx, params)
    message = _existing(ctx, channel, _required(params, "ts", "message_not_found"))
    _own(ctx, message, "cant_update_message")
    text, blocks = _str(params, "text") or _str(params, "markdown_text"), _blocks(params)
    if text is None and blocks is None and not params.get("attachments"):
        raise SlackError("no_text")
    if text is not None:
        message.text = text
    if blocks is not None:
        message.blocks = blocks
    message.edited_ts = new_ts()
    return {
        "ok": True,
        "channel": channel,
        "ts": message.ts,
        "text": message.text,
        "message": ctx.state.message_json(message),
    }


@method("chat.delete")
def chat_delete(ctx: Context, params: JSON) -> JSON:
    channel = _channel(ctx, params)
    message = _existing(ctx, channel, _required(params, "ts", "message_not_found"))
    _own(ctx, message, "cant_delete_message")
    ctx.state.delete(message)
    return {"ok": True, "channel": channel, "ts": message.ts}


@method("chat.postEphemeral")
def chat_post_ephemeral(ctx: Context, params: JSON) -> JSON:
    channel = _postable(ctx, params)
    user = _required(params, "user", "user_not_found")
    if ctx.state.user(user) is None:
        raise SlackError("user_not_found")
    text = _message_text(params)
    if not text and not _blocks(params) and not params.get("attachments"):
        raise SlackError("no_text")
    ephemeral = Ephemeral(
        channel=channel,
        user=user,
        text=text,
        thread_ts=_str(params, "thread_ts"),
        message_ts=new_ts(),
        blocks=_blocks(params),
    )
    ctx.state.ephemerals.append(ephemeral)
    return {"ok": True, "message_ts": ephemeral.message_ts}


@method("chat.startStream")
def chat_start_stream(ctx: Context, params: JSON) -> JSON:
    if not ctx.streaming_supported:
        raise SlackError(ctx.streaming_error)
    channel = _postable(ctx, params)
    _required(params, "thread_ts")
    if not ctx.state.channels[channel].get("is_im"):
        # Documented as "Required when streaming to channels".
        if _str(params, "recipient_team_id") is None:
            raise SlackError("missing_recipient_team_id")
        if _str(params, "recipient_user_id") is None:
            raise SlackError("missing_recipient_user_id")
    message = _post(ctx, channel, _stream_text(params), params, streaming=True)
    return {"ok": True, "channel": channel, "ts": message.ts}


def _streaming_message(ctx: Context, params: JSON) -> tuple[str, FakeMessage]:
    channel = _channel(ctx, params)
    message = _existing(ctx, channel, _required(params, "ts", "message_not_found"))
    if not message.streaming:
        raise SlackError("message_not_in_streaming_state")
    return channel, message


@method("chat.appendStream")
def chat_append_stream(ctx: Context, params: JSON) -> JSON:
    channel, message = _streaming_message(ctx, params)
    if "markdown_text" not in params and "chunks" not in params:
        raise SlackError("invalid_arguments")
    message.text += _stream_text(params)
    return {"ok": True, "channel": channel, "ts": message.ts}


@method("chat.stopStream")
def chat_stop_stream(ctx: Context, params: JSON) -> JSON:
    channel, message = _streaming_message(ctx, params)
    message.text += _stream_text(params)
    if (blocks := _blocks(params)) is not None:
        message.blocks = blocks
    if isinstance(metadata := parse_json_param(params.get("metadata")), dict):
        message.metadata = metadata
    message.streaming = False
    return {
        "ok": True,
        "channel": channel,
        "ts": message.ts,
        "message": ctx.state.message_json(message),
    }


@method("conversations.replies")
def conversations_replies(ctx: Context, params: JSON) -> JSON:
    channel = _channel(ctx, params)
    ts = _required(params, "ts", "thread_not_found")
    target = ctx.state.find(channel, ts)
    parent_ts = target.thread_ts if target is not None and target.is_reply else ts
    thread = ctx.state.thread(channel, parent_ts or ts)
    if not thread:
        raise SlackError("thread_not_found")
    start = int(_str(params, "cursor") or 0)
    limit = int(_str(params, "limit") or 1000)
    page = thread[start : start + limit]
    more = start + limit < len(thread)
    return {
        "ok": True,
        "messages": [ctx.state.message_json(m) for m in page],
        "has_more": more,
        "response_metadata": {"next_cursor": str(start + limit) if more else ""},
    }


@method("conversations.history")
def conversations_history(ctx: Context, params: JSON) -> JSON:
    """Top-level messages, newest first, after ``oldest``; metadata only when asked for."""
    channel = _channel(ctx, params)
    oldest = float(_str(params, "oldest") or 0)
    with_metadata = _bool(params.get("include_all_metadata"))
    found = [m for m in ctx.state.top_level(channel) if float(m.ts) > oldest][::-1]
    start = int(_str(params, "cursor") or 0)
    limit = int(_str(params, "limit") or 100)
    page = found[start : start + limit]
    more = start + limit < len(found)
    messages = []
    for m in page:
        out = ctx.state.message_json(m)
        if not with_metadata:
            out.pop("metadata", None)
        messages.append(out)
    return {
        "ok": True,
        "messages": messages,
        "has_more": more,
        "response_metadata": {"next_cursor": str(start + limit) if more else ""},
    }


@method("conversations.info")
def conversations_info(ctx: Context, params: JSON) -> JSON:
    channel_id = _required(params, "channel", "channel_not_found")
    channel = ctx.state.channel(channel_id)
    if channel is None:
        raise SlackError("channel_not_found")
    out = dict(channel)
    if not _bool(params.get("include_num_members")):
        out.pop("num_members", None)
    return {"ok": True, "channel": out}


@method("users.info")
def users_info(ctx: Context, params: JSON) -> JSON:
    user = ctx.state.user(_required(params, "user", "user_not_found"))
    if user is None:
        raise SlackError("user_not_found")
    return {"ok": True, "user": user}


@method("files.getUploadURLExternal")
def files_get_upload_url_external(ctx: Context, params: JSON) -> JSON:
    filename = _required(params, "filename")
    length = int(_str(params, "length") or 0)
    if length <= 0:
        raise SlackError("missing_argument")
    file_id = new_id("F", 11)
    ctx.state.uploads[file_id] = Upload(file_id=file_id, filename=filename, length=length)
    return {"ok": True, "upload_url": f"{ctx.base_url}/upload/v1/{file_id}", "file_id": file_id}


@method("files.completeUploadExternal")
def files_complete_upload_external(ctx: Context, params: JSON) -> JSON:
    files = parse_json_param(params.get("files"))
    if not isinstance(files, list) or not files:
        raise SlackError("invalid_arguments")
    if (channel_id := _str(params, "channel_id")) and ctx.state.channel(channel_id) is None:
        raise SlackError("invalid_channel")
    out = []
    for entry in files:
        upload = ctx.state.uploads.get(str(entry.get("id")))
        if upload is None:
            raise SlackError("file_not_found")
        upload.completed = dict(params)
        title = entry.get("title") or upload.filename
        out.append({"id": upload.file_id, "name": upload.filename, "title": title})
    return {"ok": True, "files": out}


@method("files.info")
def files_info(ctx: Context, params: JSON) -> JSON:
    found = ctx.state.files.get(_required(params, "file", "file_not_found"))
    if found is None:
        raise SlackError("file_not_found")
    return {"ok": True, "file": found}


@method("reactions.add")
def reactions_add(ctx: Context, params: JSON) -> JSON:
    channel = _channel(ctx, params)
    name = _required(params, "name", "invalid_name").strip(":")
    message = ctx.state.find(channel, _required(params, "timestamp", "message_not_found"))
    if message is None:
        raise SlackError("message_not_found")
    users = message.reactions.setdefault(name, [])
    bot = ctx.state.workspace.bot_user_id
    if bot in users:
        raise SlackError("already_reacted")
    users.append(bot)
    return {"ok": True}
