"""Successful answers in OpenAI's shapes: whole completions and the chunks of a stream."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from bot.sandbox.replies import chunks

JsonObject = dict[str, object]


@dataclass(frozen=True, slots=True)
class Choice:
    text: str
    finish_reason: str
    tokens: int
    """Of the text; the completion tokens billed are these and ``reasoning_tokens``."""
    reasoning_tokens: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    id: str
    created: int
    model: str
    """As the client wrote it: OpenAI echoes the requested name (or its snapshot)."""
    fingerprint: str
    choices: tuple[Choice, ...]
    prompt_tokens: int
    cached_tokens: int = 0
    """Of ``prompt_tokens``, those read from the prompt cache."""

    @property
    def completion_tokens(self) -> int:
        return sum(c.tokens + c.reasoning_tokens for c in self.choices)

    @property
    def reasoning_tokens(self) -> int:
        return sum(c.reasoning_tokens for c in self.choices)

    def usage(self, *, details: bool = False) -> JsonObject:
        """OpenAI's ``usage``; with ``details`` (chat completions) the token details too."""
        out: JsonObject = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        if details:
            out["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens, "audio_tokens": 0}
            out["completion_tokens_details"] = {
                "reasoning_tokens": self.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            }
        return out

    def head(self, kind: str) -> JsonObject:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}


def chat_completion(answer: Answer) -> JsonObject:
    choice = answer.choices[0]
    return {
        **answer.head("chat.completion"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": choice.text, "refusal": None},
                "logprobs": None,
                "finish_reason": choice.finish_reason,
            }
        ],
        "usage": answer.usage(details=True),
        "system_fingerprint": answer.fingerprint,
    }


def text_completion(answer: Answer) -> JsonObject:
    return {
        **answer.head("text_completion"),
        "choices": [
            {"text": c.text, "index": i, "logprobs": None, "finish_reason": c.finish_reason}
            for i, c in enumerate(answer.choices)
        ],
        "usage": answer.usage(),
    }


def chat_chunks(answer: Answer, encoding: str, *, include_usage: bool) -> Iterator[JsonObject]:
    """OpenAI's chunk sequence: the role, the content a few tokens at a time, the finish reason,
    then (if asked) the usage in a chunk with no choices; with include_usage every chunk carries
    ``"usage": null`` until that last one."""
    choice = answer.choices[0]

    def chunk(delta: JsonObject, finish: str | None) -> JsonObject:
        out: JsonObject = {
            **answer.head("chat.completion.chunk"),
            "system_fingerprint": answer.fingerprint,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            out["usage"] = None
        return out

    yield chunk({"role": "assistant", "content": "", "refusal": None}, None)
    for piece in chunks(choice.text, encoding):
        yield chunk({"content": piece}, None)
    yield chunk({}, choice.finish_reason)
    if include_usage:
        yield {
            **answer.head("chat.completion.chunk"),
            "system_fingerprint": answer.fingerprint,
            "choices": [],
            "usage": answer.usage(details=True),
        }


def text_chunks(answer: Answer, encoding: str, *, include_usage: bool) -> Iterator[JsonObject]:
    """Legacy streams: each choice's text a few tokens at a time, then its finish reason."""

    def chunk(index: int, text: str, finish: str | None) -> JsonObject:
        out: JsonObject = {
            **answer.head("text_completion"),
            "choices": [{"text": text, "index": index, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            out["usage"] = None
        return out

    for i, choice in enumerate(answer.choices):
        for piece in chunks(choice.text, encoding):
            yield chunk(i, piece, None)
        yield chunk(i, "", choice.finish_reason)
    if include_usage:
        yield {**answer.head("text_completion"), "choices": [], "usage": answer.usage()}
