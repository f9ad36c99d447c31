from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest
import tiktoken

from bot import tokens
from bot.errors import ConfigError
from bot.models import Message

# Published by OpenAI: tiktoken's README and the cookbook's "How to count tokens with tiktoken".
KNOWN = [
    ("cl100k_base", "tiktoken is great!", [83, 1609, 5963, 374, 2294, 0]),
    ("cl100k_base", "hello world", [15339, 1917]),
    ("o200k_base", "hello world", [24912, 2375]),
]

# The cookbook's example conversation: the OpenAI API bills it as 129 prompt tokens on
# gpt-3.5-turbo / gpt-4 (cl100k_base) and 124 on gpt-4o / gpt-4o-mini (o200k_base).
COOKBOOK = [
    Message(
        "system",
        "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    ),
    Message("system", "New synergies will help drive top-line growth.", "example_user"),
    Message("system", "Things working well together will increase revenue.", "example_assistant"),
    Message(
        "system",
        "Let's circle back when we have more bandwidth to touch base on "
        "opportunities for increased leverage.",
        "example_user",
    ),
    Message(
        "system",
        "Let's talk later when we're less busy about how to do better.",
        "example_assistant",
    ),
    Message(
        "user",
        "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    ),
]

CORPUS = [
    "",
    "Hello, world!",
    "  leading and trailing spaces  \n\n\t",
    "def f(x):\n    return x ** 2  # squares\n",
    "Ünïcödé, 日本語のテキスト, emoji 👩‍💻🚀, العربية",
    "numbers 1234567890 3.14159 1e-10",
    "I'm sure they'll've done it; WE'RE DONE.",
    "text with <|endoftext|> typed by a user",
    "https://example.com/path?q=1&r=2#frag",
]


@pytest.mark.parametrize(("encoding", "text", "ids"), KNOWN)
def test_known_vectors(encoding: str, text: str, ids: list[int]) -> None:
    assert tokens.encode(text, encoding) == ids
    assert tokens.count_text(text, encoding) == len(ids)


@pytest.mark.parametrize(("encoding", "expected"), [("cl100k_base", 129), ("o200k_base", 124)])
def test_chat_prompt_counts_match_what_openai_bills(encoding: str, expected: int) -> None:
    assert tokens.count_messages(COOKBOOK, encoding) == expected


@pytest.mark.parametrize("encoding", tokens.ENCODINGS)
def test_same_tokens_as_tiktokens_own_definition(
    encoding: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Build the encoding with tiktoken's own constructor (fed our verified file through its
    documented cache) and check that ours tokenizes every sample identically."""
    from tiktoken_ext import openai_public

    ours = tokens.get_encoding(encoding)
    url = f"https://openaipublic.blob.core.windows.net/encodings/{encoding}.tiktoken"
    cached = tmp_path / hashlib.sha1(url.encode()).hexdigest()
    cached.write_bytes(tokens._file_for(encoding, tokens._SPECS[encoding]).read_bytes())
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    official = tiktoken.Encoding(**openai_public.ENCODING_CONSTRUCTORS[encoding]())
    for text in CORPUS:
        assert ours.encode(text, disallowed_special=()) == official.encode(
            text, disallowed_special=()
        ), text
    assert ours.special_tokens_set == official.special_tokens_set
    assert ours.n_vocab == official.n_vocab


def test_loading_needs_no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("token counting tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(tokens, "_loaded", {})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # nothing cached yet
    assert tokens.count_text("hello world", "o200k_base") == 2
    assert (tmp_path / "quotabot" / "encodings" / "o200k_base.tiktoken").is_file()


def test_a_tampered_encoding_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    good = tokens._file_for("cl100k_base", tokens._SPECS["cl100k_base"]).read_bytes()
    (tmp_path / "cl100k_base.tiktoken").write_bytes(good.replace(b"IQ== 0", b"Ig== 0", 1))
    monkeypatch.setattr(tokens, "_loaded", {})
    monkeypatch.setenv("QUOTABOT_ENCODINGS_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="not the official cl100k_base"):
        tokens.get_encoding("cl100k_base")


def test_a_tampered_cache_is_replaced(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tokens, "_loaded", {})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cached = tmp_path / "quotabot" / "encodings" / "cl100k_base.tiktoken"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"garbage")
    assert tokens.encode("hello world") == [15339, 1917]
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == tokens._SPECS["cl100k_base"].sha256


def test_unknown_encoding_says_which_exist() -> None:
    with pytest.raises(ConfigError, match="cl100k_base, o200k_base"):
        tokens.get_encoding("p50k_base")


def test_trimming_drops_the_oldest_turns_and_keeps_system_and_question() -> None:
    history = [Message("system", "Be brief.")]
    for i in range(20):
        history += [
            Message("user", f"question {i} " * 20),
            Message("assistant", f"answer {i} " * 20),
        ]
    history.append(Message("user", "the latest question"))
    full = tokens.count_messages(history)
    trimmed = tokens.trim_messages(history, limit=full // 3)
    assert tokens.count_messages(trimmed) <= full // 3
    assert trimmed[0] == history[0]
    assert trimmed[-1] == history[-1]
    assert trimmed[1:-1] == tuple(history[-len(trimmed) + 1 : -1])  # a contiguous recent tail
    assert tokens.trim_messages(history, limit=full) == tuple(history)
