"""Images from chat shown to a vision model: checked, read, and their tokens estimated the way
OpenAI counts them, so that the budgets reserve them before the call like text.

    ImageFile (name, media type, size, how to fetch it: bot.downloads, the platform's hosts)
        -> the model sees images? no: NoVision, nothing fetched
        -> png/jpeg/gif/webp, 20 MB at most? no: refused, nothing fetched
        -> fetched into memory (it is sent base64 anyway) -> its format and size read (Pillow)
        -> Image on the question's Message -> tokens(info, image) in the prompt's count

Counting follows OpenAI's "Images and vision" guide. Tile models (gpt-4o, gpt-4.1, gpt-5,
o-series): an image is scaled to fit 2048x2048, then its shortest side to 768, and costs
``base + tile * (512 px tiles)``; "low" detail costs ``base``. Patch models (gpt-4.1-mini,
gpt-4.1-nano, o4-mini, gpt-5-mini, gpt-5-nano): 32 px patches, scaled down to at most 1,536,
times the model's multiplier. quotabot sends detail "high", so the estimate is what is billed.
"""

from __future__ import annotations

import io
import logging
import math
import warnings
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import IO

from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from bot.catalog import ModelInfo
from bot.errors import (
    AudioDownloadFailed,
    AudioTooLarge,
    ImageDownloadFailed,
    ImageRejected,
    ImageTooLarge,
    ImageUnsupported,
)
from bot.models import Detail, Image, Message

log = logging.getLogger(__name__)

MAX_BYTES = 20 * 1024 * 1024
"""OpenAI's limit per image."""
FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
"""What Pillow calls each format the provider takes, and its media type."""
MEDIA_TYPES = frozenset(FORMATS.values()) | {"image/jpg"}
FORMAT_NAMES = "PNG, JPEG, GIF (not animated) and WebP"
MAX_PATCHES = 1536
_PATCH = 32

Fetch = Callable[[IO[bytes]], Awaitable[object]]
"""Writes the file's bytes into the file object it is given (at most MAX_BYTES)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageFile:
    """An image attached on a platform, not fetched yet."""

    name: str
    media_type: str | None
    size: int | None
    """What the platform says; the real size is checked again as the bytes arrive."""
    fetch: Fetch


def is_image(media_type: str | None) -> bool:
    """Whether a platform's file is meant as an image (others are left alone)."""
    return bool(media_type) and str(media_type).lower().startswith("image/")


# -- tokens -----------------------------------------------------------------------------------


def tokens(info: ModelInfo, width: int, height: int, detail: Detail = "high") -> int:
    """Prompt tokens of one ``width`` x ``height`` image for ``info``'s model."""
    rule = info.image_tokens
    if rule.patch is not None:
        return math.ceil(patches(width, height) * rule.patch)
    if detail == "low":
        return rule.base
    return rule.base + rule.tile * tiles(width, height)


def tiles(width: int, height: int) -> int:
    """512 px tiles after scaling to fit 2048x2048, then the shortest side down to 768."""
    w, h = Fraction(width), Fraction(height)
    if max(w, h) > 2048:
        scale = 2048 / max(w, h)
        w, h = w * scale, h * scale
    if min(w, h) > 768:
        scale = 768 / min(w, h)
        w, h = w * scale, h * scale
    return math.ceil(w / 512) * math.ceil(h / 512)


def patches(width: int, height: int) -> int:
    """32 px patches covering the image, scaled down (to whole patches) to at most 1,536."""
    count = math.ceil(width / _PATCH) * math.ceil(height / _PATCH)
    if count <= MAX_PATCHES:
        return count
    shrink = math.sqrt(_PATCH * _PATCH * MAX_PATCHES / (width * height))
    w, h = width * shrink / _PATCH, height * shrink / _PATCH
    fit = min(math.floor(w) / w, math.floor(h) / h)
    # Rounded first: 33.0000000001 patches across is 33, not 34.
    across, down = (math.ceil(round(x * fit, 6)) for x in (w, h))
    return min(across * down, MAX_PATCHES)


def message_tokens(info: ModelInfo, messages: Iterable[Message]) -> int:
    """The image tokens of ``messages`` (their text is counted by bot.tokens)."""
    return sum(tokens(info, i.width, i.height, i.detail) for m in messages for i in m.images)


# -- files ------------------------------------------------------------------------------------


def check(file: ImageFile) -> None:
    """Refuses, before any download, what the platform already says will not work."""
    media = (file.media_type or "").lower().split(";")[0].strip()
    if media and media not in MEDIA_TYPES:
        raise ImageUnsupported(name=file.name, formats=FORMAT_NAMES)
    if file.size is not None and file.size > MAX_BYTES:
        raise ImageTooLarge(name=file.name, size=file.size, limit=MAX_BYTES)


async def load(file: ImageFile) -> Image:
    """The image's bytes, fetched and read. Raises ImageRejected subclasses."""
    check(file)
    into = io.BytesIO()
    try:
        await file.fetch(into)
    except AudioTooLarge as exc:  # bot.downloads speaks of audio: its first user
        raise ImageTooLarge(name=file.name, size=exc.size, limit=exc.limit) from exc
    except AudioDownloadFailed as exc:
        raise ImageDownloadFailed(name=file.name, why=exc.why) from exc
    return read(file.name, into.getvalue())


def read(name: str, data: bytes) -> Image:
    """An :class:`Image` of ``data``, whose format and size are read from its header (not
    decoded): what the file claims to be does not matter."""
    if len(data) > MAX_BYTES:
        raise ImageTooLarge(name=name, size=len(data), limit=MAX_BYTES)
    try:
        with warnings.catch_warnings():
            # A huge image is refused by its tokens' cost, not as a decompression bomb: it is
            # never decoded here.
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data)) as opened:
                kind, (width, height) = opened.format, opened.size
                frames = getattr(opened, "n_frames", 1)
    except (UnidentifiedImageError, PILImage.DecompressionBombError, OSError, ValueError):
        raise ImageUnsupported(name=name, formats=FORMAT_NAMES) from None
    if kind not in FORMATS or frames > 1 or width < 1 or height < 1:
        raise ImageUnsupported(name=name, formats=FORMAT_NAMES)
    return Image(media_type=FORMATS[kind], data=data, width=width, height=height)


THREAD_MOST = 4
"""Images from earlier in a conversation shown again with a question: the latest ones. Each is
sent (and billed) anew with every question, so a long thread of screenshots stays affordable."""


async def attach(
    messages: tuple[Message, ...],
    files: Sequence[ImageFile],
    *,
    earlier: Mapping[int, Sequence[ImageFile]] | None = None,
) -> tuple[Message, ...]:
    """``messages`` with ``files`` fetched onto the last one (the question), and the latest
    :data:`THREAD_MOST` of ``earlier`` (per index into ``messages``) onto theirs. Every file of
    the question is checked before the first is fetched, and refuses the question if it fails;
    an earlier one that fails is left out (logged): the question did not bring it."""
    for f in files:
        check(f)
    if not messages:
        return messages
    out = list(messages)
    for index, image in await _earlier(earlier or {}, len(messages) - 1):
        out[index] = replace(out[index], images=(*out[index].images, image))
    if files:
        loaded = tuple([await load(f) for f in files])
        out[-1] = replace(out[-1], images=out[-1].images + loaded)
    return tuple(out)


async def _earlier(
    earlier: Mapping[int, Sequence[ImageFile]], before: int
) -> list[tuple[int, Image]]:
    latest = [(i, f) for i in sorted(earlier) if i < before for f in earlier[i]][-THREAD_MOST:]
    out = []
    for index, file in latest:
        try:
            out.append((index, await load(file)))
        except ImageRejected as exc:
            log.info("an image earlier in the conversation was left out: %s", exc)
    return out
