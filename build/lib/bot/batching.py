"""Several legacy-completions prompts in one call, and each one's fair share of its usage.

When requests wait on the per-minute request limit, one call with an array ``prompt`` answers
many of them for the price of one request. The provider reports one ``usage`` for the whole
call; each request is charged in proportion to its own prompt and answer.
"""

from __future__ import annotations

import logging

from bot import tokens
from bot.models import Usage
from bot.provider import Choice, Completion

log = logging.getLogger(__name__)


class BatchUnsupported(Exception):
    """The server mishandled the prompt array: send these prompts one per call instead."""


def apportion(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` in whole numbers that add up exactly
    (largest remainder), so no token is lost or counted twice."""
    if not weights:
        return []
    if sum(weights) == 0:
        weights = [1] * len(weights)
    whole = sum(weights)
    shares = [total * w // whole for w in weights]
    remainders = sorted(
        range(len(weights)), key=lambda i: (total * weights[i] % whole, -i), reverse=True
    )
    for i in remainders[: total - sum(shares)]:
        shares[i] += 1
    return shares


def split(
    completion: Completion, prompts: list[str], encoding: str
) -> tuple[list[tuple[Choice, Usage]], str | None]:
    """Each prompt's choice and usage, and what was wrong with the reported usage if anything
    (then the shares are quotabot's own counts). Raises BatchUnsupported when a choice is
    missing: those prompts must be sent again."""
    by_index = {c.index: c for c in completion.choices}
    if sorted(by_index) != list(range(len(prompts))):
        raise BatchUnsupported(
            f"{len(prompts)} prompts sent, choices for indexes {sorted(by_index)} received"
        )
    prompt_counts = [tokens.count_text(p, encoding) for p in prompts]
    answer_counts = [tokens.count_text(by_index[i].text, encoding) for i in range(len(prompts))]
    usage = completion.usage
    own = [(by_index[i], Usage(prompt_counts[i], answer_counts[i])) for i in range(len(prompts))]
    if usage is None:
        return own, "no usage reported"
    if usage.prompt_tokens < 0.9 * sum(prompt_counts):
        return own, (
            f"usage says {usage.prompt_tokens} prompt tokens for prompts of "
            f"{sum(prompt_counts)} tokens: it does not cover them all"
        )
    prompt_shares = apportion(usage.prompt_tokens, prompt_counts)
    answer_shares = apportion(usage.completion_tokens, answer_counts)
    shares = [Usage(p, a) for p, a in zip(prompt_shares, answer_shares, strict=True)]
    return [(by_index[i], shares[i]) for i in range(len(prompts))], None
