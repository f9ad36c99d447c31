"""Deterministic reply text: the same request always gets the same answer, so tests and
benchmarks can compare runs token for token."""

from __future__ import annotations

import hashlib
import random
import re

from bot.tokens import count_text, encode, get_encoding

MIN_TOKENS = 20
MAX_TOKENS = 80
REASONING_STEP = 64
REASONING_STEPS = 8
_ECHO_WORDS = 6
_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")
_WORDS = (
    "the a this that every budget token limit model request reply channel team minute day "
    "quota cost price answer question prompt window context stream bucket refill server "
    "client retry header sandbox test value number small large quick careful simple steady "
    "clear local real fake useful gentle honest short long first last next always never "
    "often rarely counts spends waits sends reads keeps checks stays grows shrinks fits "
    "measures returns follows repeats explains suggests remembers and or but so because "
    "while when before after with without within per under over into from for to of in on"
)
_VOCABULARY = tuple(_WORDS.split())


def _rng(seed: int, model: str, prompt_key: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}\x00{model}\x00{prompt_key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_VOCABULARY) for _ in range(rng.randint(5, 11))]
    return " ".join(words).capitalize() + "."


def reply_text(
    *, seed: int, model: str, prompt_key: str, echo: str, encoding: str, tokens: int | None = None
) -> str:
    """A reply of roughly 20-80 tokens (the hash picks the target), or of about ``tokens``,
    quoting ``echo``.

    ``prompt_key`` is everything about the prompt that should change the answer.
    """
    rng = _rng(seed, model, prompt_key)
    target = rng.randint(MIN_TOKENS, MAX_TOKENS)
    if tokens is not None:
        target = tokens
    quoted = " ".join(_WORD.findall(echo)[:_ECHO_WORDS])
    text = f'Sandbox answer: you said "{quoted}".' if quoted else "Sandbox answer."
    while count_text(text, encoding) < target:
        text += " " + _sentence(rng)
    return text


def reasoning_tokens(*, seed: int, model: str, prompt_key: str) -> int:
    """The hidden reasoning tokens of a reasoning model's reply: 64 to 512, in steps of 64 as
    OpenAI's usually are, fixed by the request like the reply's text."""
    rng = _rng(seed, model, f"reasoning\x00{prompt_key}")
    return REASONING_STEP * rng.randint(1, REASONING_STEPS)


def truncate(text: str, max_tokens: int, encoding: str) -> tuple[str, bool]:
    """``text`` cut to at most ``max_tokens`` tokens, and whether it was cut.

    Decoding a prefix and encoding it again can merge into fewer tokens; the count a client is
    billed is that of the returned text, never more than ``max_tokens``.
    """
    tokens = encode(text, encoding)
    if len(tokens) <= max_tokens:
        return text, False
    enc = get_encoding(encoding)
    keep = max_tokens
    cut = enc.decode(tokens[:keep])
    while keep > 0 and count_text(cut, encoding) > max_tokens:
        keep -= 1
        cut = enc.decode(tokens[:keep])
    return cut, True


def chunks(text: str, encoding: str, size: int = 3) -> list[str]:
    """``text`` in pieces of ``size`` tokens, as a streamed reply arrives."""
    enc = get_encoding(encoding)
    tokens = encode(text, encoding)
    return [enc.decode(tokens[i : i + size]) for i in range(0, len(tokens), size)]
