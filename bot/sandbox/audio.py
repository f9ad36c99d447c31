"""POST /v1/audio/transcriptions as OpenAI answers it: multipart in, a deterministic
transcript out, under the model's own RPM and RPD buckets.

    multipart (file, model, prompt?, language?, response_format?) -> 25 MB? -> format?
        -> model's buckets -> {"text": ..., "usage": ...} (or the text alone)

The transcript is made from the recording's measured length and a hash of its bytes, so a
test knows what it will read. ``usage`` is what OpenAI sends: billed seconds for whisper-1,
tokens for the gpt-4o transcription models (about ten audio tokens a second here).
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass

from aiohttp import BodyPartReader, web

from bot.audio import MAX_BYTES
from bot.audio import measure as measure_file
from bot.catalog import Catalog, ModelInfo
from bot.errors import AudioRejected
from bot.sandbox import errors
from bot.sandbox.errors import ApiError

RESPONSE_FORMATS = ("json", "text", "verbose_json")
OPENAI_FORMATS = "['flac', 'm4a', 'mp3', 'mp4', 'mpeg', 'mpga', 'oga', 'ogg', 'wav', 'webm']"
_WORDS = (
    "budget",
    "quota",
    "minute",
    "request",
    "token",
    "limit",
    "reset",
    "channel",
    "model",
    "answer",
    "question",
    "meeting",
    "deadline",
    "release",
    "invoice",
    "review",
    "deploy",
    "schedule",
    "coffee",
    "tomorrow",
    "agenda",
    "summary",
)
_AUDIO_TOKENS_PER_SECOND = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioJob:
    model: str
    info: ModelInfo
    name: str
    data: bytes
    prompt: str | None
    response_format: str


async def read_form(request: web.Request, catalog: Catalog) -> AudioJob:
    """The multipart body, checked as OpenAI checks it: a file over 25 MB is a 413 before
    anything else is looked at."""
    if not request.content_type.startswith("multipart/"):
        raise ApiError(
            400,
            "Invalid Content-Type header (expected multipart/form-data)",
        )
    fields: dict[str, str] = {}
    name, data = None, b""
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "file":
            name = part.filename or "file"
            data = await _read_capped(part)
        elif part.name:
            fields[part.name] = await part.text()
    model = fields.get("model")
    if not model:
        raise errors.no_model()
    if name is None:
        raise errors.missing("file")
    info = catalog.get(model)
    if not info.known:
        raise errors.model_not_found(model)
    if info.endpoint != "transcriptions":
        raise ApiError(400, f"Model {model} is not supported for transcription.", param="model")
    response_format = fields.get("response_format") or "json"
    if response_format not in RESPONSE_FORMATS:
        raise errors.bad_value("response_format", response_format, RESPONSE_FORMATS)
    return AudioJob(
        model=model,
        info=info,
        name=name,
        data=data,
        prompt=fields.get("prompt") or None,
        response_format=response_format,
    )


async def _read_capped(part: BodyPartReader) -> bytes:
    chunks, size = [], 0
    while chunk := await part.read_chunk(1 << 20):
        size += len(chunk)
        if size <= MAX_BYTES:
            chunks.append(chunk)
    if size > MAX_BYTES:
        raise too_large(size)
    return b"".join(chunks)


def too_large(size: int) -> ApiError:
    return ApiError(
        413,
        f"Maximum content size limit ({MAX_BYTES}) exceeded ({size} bytes read)",
        type="server_error",
    )


def measure(job: AudioJob) -> float:
    """Seconds of audio in the file; a 400 as OpenAI's for a file it cannot decode."""
    try:
        return measure_file(job.name, io.BytesIO(job.data))[1]
    except AudioRejected:
        raise ApiError(
            400,
            f"Invalid file format. Supported formats: {OPENAI_FORMATS}",
            param="file",
        ) from None


def transcript(data: bytes, duration: float, prompt: str | None) -> str:
    """Deterministic: the same file always reads the same; about two words a second."""
    digest = hashlib.sha256(data).digest()
    count = max(3, min(200, round(duration * 2)))
    words = [_WORDS[digest[i % len(digest)] % len(_WORDS)] for i in range(count)]
    tag = digest[:4].hex()
    about = f" (prompt: {prompt[:40]})" if prompt else ""
    return (
        f"Sandbox transcript of {duration:.1f} s of audio [{tag}]{about}: " + " ".join(words) + "."
    )


def body(job: AudioJob, text: str, duration: float) -> tuple[object, int]:
    """The JSON answer and the seconds it bills."""
    seconds = max(1, math.ceil(duration - 1e-6))
    if job.model.startswith("whisper"):
        usage: dict[str, object] = {"type": "duration", "seconds": seconds}
    else:
        audio_tokens = math.ceil(duration * _AUDIO_TOKENS_PER_SECOND)
        output = len(text.split()) * 4 // 3 + 1
        usage = {
            "type": "tokens",
            "input_tokens": audio_tokens,
            "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens},
            "output_tokens": output,
            "total_tokens": audio_tokens + output,
        }
    if job.response_format == "verbose_json":
        return {
            "task": "transcribe",
            "language": "english",
            "duration": round(duration, 2),
            "text": text,
            "usage": usage,
        }, seconds
    return {"text": text, "usage": usage}, seconds
