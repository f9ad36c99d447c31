"""The core: one chat request in, one reply out, with its usage recorded.

    adapter -> Service.handle(request) -> budget -> provider -> usage store -> Reply
    adapter -> Service.transcribe(request) -> the same budget, provider and store -> Transcript

Adapters call :class:`Service`; they never talk to the provider or the store directly.
quotabot owns every retry: the provider client sends each call exactly once.
"""

from __future__ import annotations

from bot.service.core import Service

__all__ = ["Service"]
