"""Audio files as the transcription endpoint takes them: which formats, how large, how long.

    bytes from chat -> sniff(format by its first bytes) -> duration measured from the file
                    -> AudioClip (what the budget reserves for and the usage row records)

The duration is read from the file itself, never from what a chat platform says about it, so
the cost reserved before the call and the one recorded after it stand on a measured figure.
mutagen (pure Python) reads MP3, MP4/M4A, Ogg (Opus, Vorbis, FLAC), FLAC and WAV. It has no
Matroska reader, so WebM, the format of browser recordings and Slack's voice clips, gets the
small EBML reader below: the segment's Duration when there is one, else the last block's
time (recorders that stream, such as browsers' MediaRecorder, write no Duration).
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass

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
    data: bytes = b""
    format: str = ""
    duration: float = 0.0
    """Seconds, as measured from the file."""

    @property
    def seconds(self) -> int:
        """Whole seconds, rounded up, at least one: what a call is billed for at most."""
        return max(1, math.ceil(self.duration - 1e-6))

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]

    @property
    def size(self) -> int:
        return len(self.data)


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


def clip(name: str, data: bytes) -> AudioClip:
    """The file as an AudioClip: its format from its bytes and its measured duration.
    Raises AudioTooLarge, AudioUnsupported (not one of ``FORMATS``) or AudioUnreadable."""
    check_size(len(data))
    fmt = sniff(data)
    if fmt is None:
        raise AudioUnsupported(name=name, formats=FORMATS_TEXT)
    duration = _webm_duration(data) if fmt == "webm" else _mutagen_duration(data)
    if duration is None or not math.isfinite(duration) or duration <= 0:
        raise AudioUnreadable(name=name, formats=FORMATS_TEXT)
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return AudioClip(f"{stem or 'audio'}.{fmt}", data, fmt, duration)


def sniff(data: bytes) -> str | None:
    """The container, from its magic bytes (a file's name or media type may lie)."""
    head = data[:16]
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


def _mutagen_duration(data: bytes) -> float | None:
    try:
        found = mutagen.File(io.BytesIO(data))
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


def _webm_duration(data: bytes) -> float | None:
    """Seconds: the segment's Duration, else the start of its last block (a recorder that
    streams writes no Duration; the last block's own length, some 20 ms, is not counted)."""
    scale, cluster, pos = 1_000_000, 0, 0
    duration: float | None = None
    last: int | None = None
    try:
        while pos < len(data):
            element, pos, _ = _vint(data, pos, keep_marker=True)
            size, pos, unknown = _vint(data, pos, keep_marker=False)
            if element in _MASTERS:
                continue  # read its children next
            if unknown or pos + size > len(data):
                break  # cut off: use what was read
            body = data[pos : pos + size]
            if element == _TIMESCALE:
                scale = int.from_bytes(body, "big") or scale
            elif element == _DURATION and size in (4, 8):
                duration = float(struct.unpack(">f" if size == 4 else ">d", body)[0])
            elif element == _TIMECODE:
                cluster = int.from_bytes(body, "big")
            elif element in (_SIMPLE_BLOCK, _BLOCK):
                _, at, _ = _vint(body, 0, keep_marker=False)  # the track number
                if at + 2 <= len(body):
                    offset = int.from_bytes(body[at : at + 2], "big", signed=True)
                    last = max(last or 0, cluster + offset)
            pos += size
    except _Truncated:
        pass
    if duration is not None and duration > 0:
        return duration * scale / 1e9
    if last is not None:
        return last * scale / 1e9
    return None
