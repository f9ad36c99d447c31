"""Long answers cut for Discord's 2,000 characters, code blocks kept whole where they fit."""

from __future__ import annotations

import re

from bot.chat.split import LIMIT, split


def _fences_balanced(piece: str) -> bool:
    return len(re.findall(r"^\s*```", piece, flags=re.MULTILINE)) % 2 == 0


def test_short_text_is_one_piece() -> None:
    assert split("hello") == ["hello"]
    assert split("") == [""]


def test_a_code_block_that_fits_moves_whole_to_the_next_message() -> None:
    prose = "intro\n\n" + "word " * 300
    code = "```python\n" + "\n".join(f"x{i} = {i}" for i in range(120)) + "\n```"
    first, second = split(f"{prose}\n\n{code}\n\nthe end")
    assert "```" not in first and len(first) <= LIMIT
    assert second.startswith("```python") and second.endswith("the end")
    assert code in second  # not cut


def test_a_code_block_longer_than_a_message_is_closed_and_reopened() -> None:
    code = "```py\n" + "\n".join(f"line_{i} = '{'y' * 40}'" for i in range(200)) + "\n```"
    pieces = split(code)
    assert len(pieces) >= 5
    for piece in pieces:
        assert len(piece) <= LIMIT
        assert piece.startswith("```py\n") and piece.endswith("\n```")  # language kept
        assert _fences_balanced(piece)
    lines = [ln for p in pieces for ln in p.split("\n") if ln.startswith("line_")]
    assert lines == [f"line_{i} = '{'y' * 40}'" for i in range(200)]  # nothing lost or doubled


def test_paragraphs_are_kept_together_and_long_lines_wrapped() -> None:
    text = "\n\n".join(f"paragraph {i}: " + "words " * 60 for i in range(12))
    pieces = split(text)
    assert all(len(p) <= LIMIT for p in pieces)
    assert all(p.startswith("paragraph") for p in pieces)  # cuts fall between paragraphs
    one_line = "x" * 5000
    assert "".join(split(one_line)) == one_line
    assert all(len(p) <= LIMIT for p in split(one_line))


def test_an_unclosed_block_from_a_cut_off_answer_still_splits_cleanly() -> None:
    pieces = split("```js\n" + "let a = 1;\n" * 400)
    assert all(len(p) <= LIMIT and _fences_balanced(p) for p in pieces)
