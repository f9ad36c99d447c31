"""Where quotabot answers at all: workspace/guild and channel allow and deny lists.

Set in the configuration (``allowed_workspaces``, ``allowed_channels``, ``denied_channels``),
on top of each channel's own on/off switch (``quotabot channel``). IDs are the platform's own
(Slack ``T…``/``C…``, Discord snowflakes). An empty allow list allows everything.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Access:
    allowed_workspaces: frozenset[str] = frozenset()
    allowed_channels: frozenset[str] = frozenset()
    denied_channels: frozenset[str] = frozenset()

    def allows(self, workspace: str, channel: str) -> bool:
        if self.allowed_workspaces and workspace not in self.allowed_workspaces:
            return False
        if channel in self.denied_channels:
            return False
        return not self.allowed_channels or channel in self.allowed_channels
