"""Audio files: their format from their bytes, their length measured from the file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot import audio
from bot.audio import MAX_BYTES, AudioClip, check_size, looks_like_audio
from bot.errors import AudioTooLarge, AudioUnreadable, AudioUnsupported
from fakes.recordings import encoded, voice_webm, wav


@pytest.fixture
def clip(tmp_path: Path) -> Callable[[str, bytes], AudioClip]:
    """``clip(name, data)``: the bytes as a file on disk (where downloads go), measured."""

    def measured(name: str, data: bytes) -> AudioClip:
        path = tmp_path / f"download-{len(list(tmp_path.iterdir()))}"
        path.write_bytes(data)
        return audio.clip(name, path)

    return measured


@pytest.mark.parametrize("fmt", ["mp3", "m4a", "ogg", "webm", "flac"])
def test_each_format_is_measured_from_the_file(
    fmt: str, clip: Callable[[str, bytes], AudioClip]
) -> None:
    c = clip("voice note.bin", encoded(fmt, 3.0))
    assert c.format == fmt
    assert c.name == f"voice note.{fmt}"  # the provider tells formats apart by the extension
    # Encoders pad a frame or two (mp3 and AAC about 0.1 s): never a second.
    assert 3.0 <= c.duration < 3.15
    assert c.seconds in (3, 4)


def test_wav_from_the_standard_library(clip: Callable[[str, bytes], AudioClip]) -> None:
    c = clip("memo.wav", wav(2.5))
    assert (c.format, c.duration, c.seconds, c.media_type) == ("wav", 2.5, 3, "audio/wav")


def test_webm_from_a_recorder_that_streams_has_no_duration_but_is_measured(
    clip: Callable[[str, bytes], AudioClip],
) -> None:
    """Browsers' MediaRecorder (and Slack's clips) write no segment Duration: the length is
    read from the last block's time instead."""
    c = clip("clip.webm", voice_webm(4.0))
    assert c.format == "webm"
    assert 3.9 <= c.duration <= 4.02  # Opus starts a few ms late: its pre-skip


def test_a_webm_larger_than_the_readers_window_is_walked_to_its_end(
    clip: Callable[[str, bytes], AudioClip],
) -> None:
    """The EBML reader sees the file through a 64 KiB window: 20 s of Opus is three of them."""
    data = voice_webm(20.0)
    assert len(data) > 3 * 64 * 1024
    assert 19.9 <= clip("clip.webm", data).duration <= 20.02


def test_other_files_are_refused_with_the_formats_that_work(
    clip: Callable[[str, bytes], AudioClip],
) -> None:
    with pytest.raises(AudioUnsupported) as refused:
        clip("diagram.png", b"\x89PNG\r\n\x1a\n" + bytes(100))
    assert "diagram.png is not in an audio format" in str(refused.value)
    assert "mp3, m4a, ogg/opus, wav, webm" in str(refused.value)


def test_a_damaged_file_is_refused_as_unreadable(clip: Callable[[str, bytes], AudioClip]) -> None:
    cut = encoded("m4a", 2.0)[:40]  # the header, and nothing the length could be read from
    with pytest.raises(AudioUnreadable, match=r"could not read the length of memo\.m4a"):
        clip("memo.m4a", cut)


def test_the_providers_25_mb_limit_is_checked_before_anything_is_downloaded() -> None:
    check_size(MAX_BYTES)
    with pytest.raises(AudioTooLarge) as refused:
        check_size(30 * 1024 * 1024)
    assert str(refused.value).startswith("This file is 30.0 MB")
    assert "up to 25.0 MB" in str(refused.value)


@pytest.mark.parametrize(
    ("name", "media", "audio"),
    [
        ("audio_message.webm", "audio/webm", True),
        ("voice-message.ogg", "audio/ogg", True),
        ("clip.webm", "video/webm", True),
        ("recording.m4a", None, True),
        ("notes.txt", "text/plain", False),
        ("photo.jpg", "image/jpeg", False),
    ],
)
def test_which_attachments_are_taken_for_audio(name: str, media: str | None, audio: bool) -> None:
    assert looks_like_audio(name, media) is audio
