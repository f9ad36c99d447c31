"""Audio files as the transcription endpoint takes them: which formats, how large, how long.

    file from chat (on disk) -> sniff(format by its first bytes) -> duration measured from
                             the file -> AudioClip (what the budget reserves for and the usage
                             row records; the provider's upload streams from its path)

The duration is read from the file itself, never from what a chat platform says about it, so
the cost reserved before the call and the one recorded after it stand on a measured figure.
mutagen (pure Python) reads MP3, MP4/M4A, Ogg (Opus, Vorbis, FLAC), FLAC and WAV. It has no
Matroska reader, so WebM, the format of browser recordings and Slack's voice clips, gets the
small EBML reader below: the segment's Duration when there is one, else the last block's
time (recorders that stream, such as browsers' MediaRecorder, write no Duration). Both read
the file in small pieces: a recording is never held in memory whole.
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import mutagen

from bot.errors import AudioTooLarge, AudioUnreadable, AudioUnsupported

MAX_BYTES = 25 * 1024 * 1024
"""OpenAI's limit for one file to /v1/audio/transcriptions."""
FORMATS = ("mp3", "m4a", "ogg", "wav", "webm", "flac")
"""What quotabot sends on (Opus voice notes are Ogg or WebM)."""
FORMATS_TEXT = "mp3, m4a, ogg/opus, wav, webm, flac"
MEDIA_TYPES = {
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
    "ogg": "audio/ogg",
    "wav": "audio/wav",
    "webm": "audio/webm",
    "flac": "audio/flac",
}
_EXTENSIONS = {
    "mp3": "mp3",
    "mpga": "mp3",
    "mpeg": "mp3",
    "m4a": "m4a",
    "mp4": "m4a",
    "ogg": "ogg",
    "oga": "ogg",
    "opus": "ogg",
    "wav": "wav",
    "webm": "webm",
    "flac": "flac",
}


@dataclass(frozen=True, slots=True)
class AudioClip:
    name: str
    """A file name with the format's extension: the provider tells formats apart by it."""
    path: Path
    """Where the recording is: a temporary file, which whoever made it deletes."""
    format: str
    duration: float
    """Seconds, as measured from the file."""
    size: int

    @property
    def seconds(self) -> int:
        """Whole seconds, rounded up, at least one: what a call is billed for at most."""
        return max(1, math.ceil(self.duration - 1e-6))

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]

    def open(self) -> BinaryIO:
        """The recording from its first byte (one file object per upload attempt)."""
        return self.path.open("rb")


def looks_like_audio(name: str, media_type: str | None) -> bool:
    """Whether a chat attachment is meant as audio (a recording, a voice note, a clip);
    whether quotabot can read it is decided from its bytes later."""
    media = (media_type or "").split(";")[0].strip().lower()
    if media.startswith("audio/") or media in ("video/webm", "video/mp4", "video/ogg"):
        return True
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return ext in _EXTENSIONS or ext in ("aac", "amr", "wma", "aiff", "aif", "m4b", "caf")


def check_size(size: int) -> None:
    """Refuse a file the provider would refuse, before it is downloaded."""
    if size > MAX_BYTES:
        raise AudioTooLarge(size=size, limit=MAX_BYTES)


def clip(name: str, path: Path) -> AudioClip:
    """The file at ``path`` as an AudioClip: its format from its bytes and its measured
    duration. Raises AudioTooLarge, AudioUnsupported (not one of ``FORMATS``) or
    AudioUnreadable. Reads the disk: call it from a thread in async code."""
    with path.open("rb") as f:
        size = f.seek(0, io.SEEK_END)
        check_size(size)
        fmt, duration = measure(name, f)
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return AudioClip(f"{stem or 'audio'}.{fmt}", path, fmt, duration, size)


def measure(name: str, f: BinaryIO) -> tuple[str, float]:
    """The format and the seconds of the recording in ``f`` (a seekable binary file).
    Raises AudioUnsupported or AudioUnreadable; ``name`` is for their messages."""
    f.seek(0)
    fmt = sniff(f.read(16))
    if fmt is None:
        raise AudioUnsupported(name=name, formats=FORMATS_TEXT)
    f.seek(0)
    duration = _webm_duration(f) if fmt == "webm" else _mutagen_duration(f)
    if duration is None or not math.isfinite(duration) or duration <= 0:
        raise AudioUnreadable(name=name, formats=FORMATS_TEXT)
    return fmt, duration


def sniff(head: bytes) -> str | None:
    """The container, from its first 16 bytes (a file's name or media type may lie)."""
    head = head[:16]
    if head.startswith(b"ID3") or (
        len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06
    ):
        return "mp3"
    if head[4:8] == b"ftyp":
        return "m4a"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    if head.startswith(b"fLaC"):
        return "flac"
    return None


def _mutagen_duration(f: BinaryIO) -> float | None:
    try:
        found = mutagen.File(f)
    except Exception:  # mutagen raises many kinds for broken files: all mean "unreadable"
        return None
    length = getattr(getattr(found, "info", None), "length", None)
    return float(length) if isinstance(length, int | float) else None


# -- WebM / Matroska ---------------------------------------------------------------------------

_SEGMENT, _INFO, _CLUSTER, _BLOCK_GROUP = 0x18538067, 0x1549A966, 0x1F43B675, 0xA0
_TIMESCALE, _DURATION, _TIMECODE = 0x2AD7B1, 0x4489, 0xE7
_SIMPLE_BLOCK, _BLOCK = 0xA3, 0xA1
_MASTERS = frozenset({_SEGMENT, _INFO, _CLUSTER, _BLOCK_GROUP})
"""Elements read into rather than skipped: walking their children in place makes elements of
unknown size (live recordings have them) no harder than the others."""


class _Truncated(Exception):
    pass


def _vint(data: bytes, pos: int, *, keep_marker: bool) -> tuple[int, int, bool]:
    """An EBML variable-length integer at ``pos``: (value, next position, all ones)."""
    if pos >= len(data):
        raise _Truncated
    first = data[pos]
    length = 8 - first.bit_length() + 1
    if length > 8 or pos + length > len(data):
        raise _Truncated
    value = first if keep_marker else first & ((1 << (8 - length)) - 1)
    for byte in data[pos + 1 : pos + length]:
        value = (value << 8) | byte
    ones = not keep_marker and value == (1 << (7 * length)) - 1
    return value, pos + length, ones


class _Window:
    """The file seen through a small buffer: the EBML walk reads a few bytes here and there
    and skips the rest, so a large file costs ``_WINDOW`` bytes of memory, not its size."""

    def __init__(self, f: BinaryIO):
        self.f = f
        self.length = f.seek(0, io.SEEK_END)
        self.base, self.buf = 0, b""

    def at(self, pos: int, n: int) -> tuple[bytes, int]:
        """A buffer holding the ``n`` bytes from ``pos`` (fewer at the end of the file), and
        where in it they start."""
        if pos < self.base or pos + n > self.base + len(self.buf):
            self.f.seek(pos)
            self.base, self.buf = pos, self.f.read(max(n, _WINDOW))
        return self.buf, pos - self.base


_WINDOW = 64 * 1024


def _webm_duration(f: BinaryIO) -> float | None:
    """Seconds: the segment's Duration, else the start of its last block (a recorder that
    streams writes no Duration; the last block's own length, some 20 ms, is not counted)."""
    data = _Window(f)
    scale, cluster, pos = 1_000_000, 0, 0
    duration: float | None = None
    last: int | None = None
    try:
        while pos < data.length:
            buf, at = data.at(pos, 16)  # an element's ID and size: 8 bytes each at most
            element, after_id, _ = _vint(buf, at, keep_marker=True)
            size, after_size, unknown = _vint(buf, after_id, keep_marker=False)
            pos += after_size - at
            if element in _MASTERS:
                continue  # read its children next
            if unknown or pos + size > data.length:
                break  # cut off: use what was read
            if element in (_TIMESCALE, _DURATION, _TIMECODE) and size <= 8:
                buf, at = data.at(pos, size)
                body = buf[at : at + size]
                if element == _TIMESCALE:
                    scale = int.from_bytes(body, "big") or scale
                elif element == _DURATION and size in (4, 8):
                    duration = float(struct.unpack(">f" if size == 4 else ">d", body)[0])
                elif element == _TIMECODE:
                    cluster = int.from_bytes(body, "big")
            elif element in (_SIMPLE_BLOCK, _BLOCK):
                buf, at = data.at(pos, min(size, 10))  # the track number, then the time
                body = buf[at : at + min(size, 10)]
                _, track_end, _ = _vint(body, 0, keep_marker=False)
                if track_end + 2 <= len(body):
                    offset = int.from_bytes(body[track_end : track_end + 2], "big", signed=True)
                    last = max(last or 0, cluster + offset)
            pos += size
    except _Truncated:
        pass
    if duration is not None and duration > 0:
        return duration * scale / 1e9
    if last is not None:
        return last * scale / 1e9
    return None
