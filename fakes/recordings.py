"""Real audio files made in the tests: a few seconds of a tone (with a little tremolo, so
that encoders have something to encode), as the formats chat apps post them.

    wav(3.0)                     the standard library's ``wave`` module
    encoded("mp3", 3.0)          PyAV (FFmpeg in its wheel): mp3, m4a, ogg (Opus), webm (Opus)
    voice_webm(3.0)              WebM as a browser's MediaRecorder writes it: no Duration
"""

from __future__ import annotations

import array
import io
import math
import wave

import av

_CODECS = {
    "mp3": ("mp3", "libmp3lame", 16_000),
    "m4a": ("ipod", "aac", 16_000),
    "ogg": ("ogg", "libopus", 48_000),
    "webm": ("webm", "libopus", 48_000),
    "flac": ("flac", "flac", 16_000),
}


def _sample(n: int, rate: int) -> float:
    t = n / rate
    return 0.3 * math.sin(2 * math.pi * 440 * t) * (0.6 + 0.4 * math.sin(2 * math.pi * 3 * t))


def wav(seconds: float, *, rate: int = 16_000) -> bytes:
    frames = array.array("h", (int(_sample(n, rate) * 32767) for n in range(int(seconds * rate))))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames.tobytes())
    return out.getvalue()


def encoded(fmt: str, seconds: float) -> bytes:
    """``seconds`` of tone in ``fmt`` (a key of ``_CODECS``), encoded by FFmpeg."""
    container, codec, rate = _CODECS[fmt]
    out = io.BytesIO()
    with av.open(out, "w", format=container) as f:
        stream = f.add_stream(codec, rate=rate, layout="mono")
        ctx = stream.codec_context
        size, sample_format = ctx.frame_size or 1024, ctx.format.name
        total = int(seconds * rate)
        for start in range(0, total, size):
            count = min(size, total - start)
            values = [_sample(start + k, rate) for k in range(count)]
            if sample_format.startswith("s16"):
                raw = array.array("h", (int(v * 32767) for v in values)).tobytes()
            elif sample_format.startswith("s32"):
                raw = array.array("i", (int(v * 2_000_000_000) for v in values)).tobytes()
            else:
                raw = array.array("f", values).tobytes()
            frame = av.AudioFrame(format=sample_format, layout="mono", samples=count)
            frame.planes[0].update(raw)
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                f.mux(packet)
        for packet in stream.encode(None):
            f.mux(packet)
    return out.getvalue()


def voice_webm(seconds: float) -> bytes:
    """WebM without its segment Duration, as recorders that stream write it (the Duration
    element's ID is changed into one no reader knows, so it is skipped)."""
    data = encoded("webm", seconds)
    assert data.count(b"\x44\x89\x88") == 1
    return data.replace(b"\x44\x89\x88", b"\x44\x44\x88")
