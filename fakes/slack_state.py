"""What the fake Slack remembers: messages per channel, users, channels, files and reactions.

Shapes follow the objects Slack's Web API returns (``conversations.replies`` messages,
``users.info`` users, ``conversations.info`` channels); the fields a bot reads are all there,
rarely-used ones are left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fakes.slack_workspace import DEFAULT_USER, SlackWorkspace, new_ts, ts_key

JSON = dict[str, Any]


@dataclass
class FakeMessage:
    """A message in a channel; ``text`` is what a reader sees now (after updates and stream
    appends)."""

    channel: str
    ts: str
    text: str
    user: str | None
    bot_id: str | None = None
    app_id: str | None = None
    team: str | None = None
    thread_ts: str | None = None
    blocks: list[JSON] | None = None
    metadata: JSON | None = None
    reply_broadcast: bool = False
    streaming: bool = False
    edited_ts: str | None = None
    reactions: dict[str, list[str]] = field(default_factory=dict)
    files: list[JSON] | None = None
    """File objects shared in the message (as in its ``file_share`` event)."""

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    @property
    def visible_text(self) -> str:
        return self.text or blocks_text(self.blocks)

    def to_api(
        self,
        replies: list[FakeMessage] | None = None,
        *,
        parent_user_id: str | None = None,
        bot_profile: JSON | None = None,
    ) -> JSON:
        """The message object as ``conversations.replies`` / ``chat.postMessage`` return it."""
        out: JSON = {"type": "message", "ts": self.ts, "text": self.text}
        if self.user is not None:
            out["user"] = self.user
        if self.bot_id is not None:
            out["bot_id"] = self.bot_id
        if self.app_id is not None:
            out["app_id"] = self.app_id
        if self.team is not None:
            out["team"] = self.team
        if self.blocks is not None:
            out["blocks"] = self.blocks
        if self.metadata is not None:
            out["metadata"] = self.metadata
        if self.files:
            out["files"] = self.files
            out["upload"] = False
        if bot_profile is not None:
            out["bot_profile"] = bot_profile
        if self.thread_ts is not None:
            out["thread_ts"] = self.thread_ts
        if parent_user_id is not None:
            out["parent_user_id"] = parent_user_id
        if self.edited_ts is not None:
            out["edited"] = {"user": self.user, "ts": self.edited_ts}
        if self.reactions:
            out["reactions"] = [
                {"name": name, "users": users, "count": len(users)}
                for name, users in self.reactions.items()
            ]
        if replies:
            out["thread_ts"] = self.ts
            out["reply_count"] = len(replies)
            out["reply_users"] = sorted({r.user for r in replies if r.user})
            out["reply_users_count"] = len(out["reply_users"])
            out["latest_reply"] = replies[-1].ts
        return out


@dataclass(frozen=True)
class Ephemeral:
    """A ``chat.postEphemeral``: seen by one user only, never in history."""

    channel: str
    user: str
    text: str
    thread_ts: str | None
    message_ts: str
    blocks: list[JSON] | None = None


@dataclass
class Upload:
    """A file from ``files.getUploadURLExternal``; ``content`` arrives at the upload URL and
    ``completed`` with ``files.completeUploadExternal``."""

    file_id: str
    filename: str
    length: int
    content: bytes | None = None
    completed: JSON | None = None


def blocks_text(blocks: list[JSON] | None) -> str:
    """The readable text of Block Kit blocks (sections, headers, markdown, context, rich text)."""
    parts: list[str] = []

    def text_of(obj: Any) -> None:
        if isinstance(obj, dict):
            if isinstance(obj.get("text"), str):
                parts.append(obj["text"])
            elif isinstance(obj.get("text"), dict):
                text_of(obj["text"])
            for key in ("elements", "fields"):
                for item in obj.get(key) or []:
                    text_of(item)

    for block in blocks or []:
        text_of(block)
    return "\n".join(parts)


def parse_json_param(value: Any) -> Any:
    """Form-encoded calls carry arrays (blocks, chunks, files) as JSON strings."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class SlackState:
    """Everything the fake workspace holds. Channel and user IDs nobody added are made up from
    their prefix (C public, G private, D direct message; U/W people), as a real workspace would
    know them all."""

    def __init__(self, workspace: SlackWorkspace) -> None:
        self.workspace = workspace
        self.messages: dict[str, list[FakeMessage]] = {}
        self.ephemerals: list[Ephemeral] = []
        self.users: dict[str, JSON] = {}
        self.channels: dict[str, JSON] = {}
        self.uploads: dict[str, Upload] = {}
        self.files: dict[str, JSON] = {}
        """Shared files' objects by id, for files.info."""
        self.add_user(
            workspace.bot_user_id,
            name=workspace.bot_name,
            is_bot=True,
            bot_id=workspace.bot_id,
        )

    # --- users ---------------------------------------------------------------------------

    def add_user(
        self,
        user_id: str,
        *,
        name: str | None = None,
        real_name: str | None = None,
        is_admin: bool = False,
        is_owner: bool = False,
        is_primary_owner: bool = False,
        is_restricted: bool = False,
        is_bot: bool = False,
        deleted: bool = False,
        tz: str = "Europe/London",
        bot_id: str | None = None,
    ) -> JSON:
        name = name or user_id.lower()
        profile: JSON = {
            "real_name": real_name or name.title(),
            "display_name": name,
            "real_name_normalized": real_name or name.title(),
            "display_name_normalized": name,
            "team": self.workspace.team_id,
        }
        if bot_id is not None:
            profile["bot_id"] = bot_id
            profile["api_app_id"] = self.workspace.api_app_id
        user: JSON = {
            "id": user_id,
            "team_id": self.workspace.team_id,
            "name": name,
            "deleted": deleted,
            "real_name": profile["real_name"],
            "tz": tz,
            "tz_label": "Greenwich Mean Time",
            "tz_offset": 0,
            "profile": profile,
            "is_admin": is_admin,
            "is_owner": is_owner,
            "is_primary_owner": is_primary_owner,
            "is_restricted": is_restricted,
            "is_ultra_restricted": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "updated": 1_700_000_000,
        }
        self.users[user_id] = user
        return user

    def user(self, user_id: str) -> JSON | None:
        if user_id not in self.users and user_id[:1] in ("U", "W"):
            self.add_user(user_id)
        return self.users.get(user_id)

    # --- channels ------------------------------------------------------------------------

    def add_channel(
        self,
        channel_id: str,
        *,
        name: str | None = None,
        is_private: bool | None = None,
        user: str | None = None,
        is_archived: bool = False,
        num_members: int = 3,
    ) -> JSON:
        """A conversation; a ``D...`` ID (or ``user=``) makes a direct message with that user."""
        ws = self.workspace
        if channel_id.startswith("D") or user is not None:
            channel: JSON = {
                "id": channel_id,
                "created": 1_700_000_000,
                "is_archived": is_archived,
                "is_im": True,
                "is_org_shared": False,
                "context_team_id": ws.team_id,
                "user": user or DEFAULT_USER,
                "is_user_deleted": False,
                "priority": 0,
            }
        else:
            private = channel_id.startswith("G") if is_private is None else is_private
            name = name or f"channel-{channel_id.lower()}"
            channel = {
                "id": channel_id,
                "name": name,
                "is_channel": not private,
                "is_group": private,
                "is_im": False,
                "is_mpim": False,
                "is_private": private,
                "created": 1_700_000_000,
                "is_archived": is_archived,
                "is_general": False,
                "unlinked": 0,
                "name_normalized": name,
                "is_shared": False,
                "is_org_shared": False,
                "is_pending_ext_shared": False,
                "is_ext_shared": False,
                "context_team_id": ws.team_id,
                "is_member": True,
                "creator": DEFAULT_USER,
                "topic": {"value": "", "creator": "", "last_set": 0},
                "purpose": {"value": "", "creator": "", "last_set": 0},
                "previous_names": [],
                "num_members": num_members,
            }
        self.channels[channel_id] = channel
        return channel

    def channel(self, channel_id: str) -> JSON | None:
        if channel_id not in self.channels and channel_id[:1] in ("C", "G", "D"):
            self.add_channel(channel_id)
        return self.channels.get(channel_id)

    def dm_channel_for(self, user_id: str) -> str:
        """``chat.postMessage(channel=U...)`` posts in the bot's DM with that user."""
        for channel in self.channels.values():
            if channel.get("is_im") and channel.get("user") == user_id:
                return str(channel["id"])
        channel_id = "D" + user_id[1:]
        self.add_channel(channel_id, user=user_id)
        return channel_id

    # --- messages ------------------------------------------------------------------------

    def add_message(
        self,
        channel: str,
        text: str,
        *,
        user: str | None,
        ts: str | None = None,
        thread_ts: str | None = None,
        **fields: Any,
    ) -> FakeMessage:
        message = FakeMessage(
            channel=channel,
            ts=ts or new_ts(),
            text=text,
            user=user,
            thread_ts=thread_ts,
            team=self.workspace.team_id,
            **fields,
        )
        in_channel = self.messages.setdefault(channel, [])
        in_channel.append(message)
        in_channel.sort(key=lambda m: ts_key(m.ts))
        return message

    def find(self, channel: str, ts: str) -> FakeMessage | None:
        for message in self.messages.get(channel, []):
            if message.ts == ts:
                return message
        return None

    def delete(self, message: FakeMessage) -> None:
        self.messages[message.channel].remove(message)

    def replies(self, channel: str, thread_ts: str) -> list[FakeMessage]:
        return [
            m
            for m in self.messages.get(channel, [])
            if m.thread_ts == thread_ts and m.ts != thread_ts
        ]

    def thread(self, channel: str, thread_ts: str) -> list[FakeMessage]:
        """Parent (when known) then replies, as ``conversations.replies`` lists them."""
        parent = self.find(channel, thread_ts)
        return ([parent] if parent else []) + self.replies(channel, thread_ts)

    def message_json(self, message: FakeMessage) -> JSON:
        """``message.to_api()`` with what only the channel knows: thread counts, the parent's
        author, and the bot's profile on the bot's own messages."""
        ws = self.workspace
        parent = None
        if message.is_reply and message.thread_ts is not None:
            parent = self.find(message.channel, message.thread_ts)
        bot_profile = None
        if message.bot_id == ws.bot_id:
            bot_profile = {
                "id": ws.bot_id,
                "app_id": ws.api_app_id,
                "name": ws.bot_name,
                "deleted": False,
                "updated": 1_700_000_000,
                "team_id": ws.team_id,
            }
        return message.to_api(
            None if message.is_reply else self.replies(message.channel, message.ts),
            parent_user_id=parent.user if parent else None,
            bot_profile=bot_profile,
        )

    def top_level(self, channel: str) -> list[FakeMessage]:
        """What ``conversations.history`` would list: no thread replies unless broadcast."""
        return [m for m in self.messages.get(channel, []) if not m.is_reply or m.reply_broadcast]
