"""OpenAI's prompt caching, as its usage reports it (``prompt_tokens_details.cached_tokens``).

OpenAI keeps the prefixes of the prompts a model has seen: a chat prompt that begins like one
seen recently has that beginning read from the cache, in steps of 128 tokens once at least
1,024 match, and billed at the cached-input price. A cached prefix is forgotten after 5 to 10
minutes without use; here after 10 minutes of the sandbox's clock, so tests can move time.

The sandbox keeps a hash of each prompt's prefixes at 1,024, 1,152, 1,280, ... tokens, per
model, in a least-recently-used table of bounded size; a prompt's cached tokens are the length
of its longest prefix found there.
"""

from __future__ import annotations

import hashlib
import struct
from collections import OrderedDict
from collections.abc import Callable, Sequence

from bot.models import Message
from bot.tokens import encode

MIN_CACHED = 1_024
"""The shortest prefix OpenAI caches."""
STEP = 128
"""Cached prefixes grow in steps of this many tokens."""
EXPIRY = 600.0
"""Seconds a cached prefix lasts without being used."""
KEEP = 100_000
"""Prefix hashes kept over all models (16 bytes each plus a time); the least recently used go
first. A 100,000-token prompt takes 774 of them."""

# The framing of a chat prompt, as ids outside every encoding's vocabulary (which stop short of
# 2**18): each message is <start> role [<name> name] <separator> content <end>, the
# TOKENS_PER_MESSAGE and TOKENS_PER_NAME of bot.tokens.
_START, _SEPARATOR, _END, _NAME = 2**32 - 4, 2**32 - 3, 2**32 - 2, 2**32 - 1


def prompt_ids(messages: Sequence[Message], encoding: str) -> list[int]:
    """The tokens of a chat prompt in the order the model reads them; as many as
    ``bot.tokens.count_messages`` counts. The reply is primed with the head of an assistant
    message (<start> assistant <separator>), so a thread that goes on with that answer begins
    with the whole of the previous prompt."""
    ids: list[int] = []
    for m in messages:
        ids += _head(m.role, m.name, encoding)
        ids += encode(m.content, encoding)
        ids.append(_END)
    ids += _head("assistant", None, encoding)
    return ids


def _head(role: str, name: str | None, encoding: str) -> list[int]:
    out = [_START, *encode(role, encoding)]
    if name:
        out += [_NAME, *encode(name, encoding)]
    out.append(_SEPARATOR)
    return out


class PromptCache:
    def __init__(
        self, clock: Callable[[], float], *, expiry: float = EXPIRY, keep: int = KEEP
    ) -> None:
        self._clock = clock
        self._expiry = expiry
        self._keep = keep
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        """Hash of (model, prefix) -> when it was last read or written."""

    def __len__(self) -> int:
        return len(self._seen)

    def serve(self, model: str, messages: Sequence[Message], encoding: str, tokens: int) -> int:
        """The cached tokens of a prompt of ``tokens`` tokens that ``model`` answers now; its
        prefixes are then cached (or kept fresh) for the prompts that follow."""
        if tokens < MIN_CACHED:
            return 0
        now = self._clock()
        prefixes = _prefix_hashes(model, prompt_ids(messages, encoding))
        cached = 0
        for length, key in reversed(prefixes):
            seen = self._seen.get(key)
            if seen is not None and now - seen < self._expiry:
                cached = length
                break
        for _, key in prefixes:
            self._seen[key] = now
            self._seen.move_to_end(key)
        while len(self._seen) > self._keep:
            self._seen.popitem(last=False)
        return cached


def _prefix_hashes(model: str, ids: Sequence[int]) -> list[tuple[int, bytes]]:
    """(length, hash) of each prefix of ``ids`` that OpenAI would cache, shortest first."""
    h = hashlib.blake2b(model.encode() + b"\x00", digest_size=16)
    out = []
    done = 0
    for length in range(MIN_CACHED, len(ids) + 1, STEP):
        part = ids[done:length]
        h.update(struct.pack(f"<{len(part)}I", *part))
        out.append((length, h.copy().digest()))
        done = length
    return out
