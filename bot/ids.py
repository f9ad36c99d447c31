"""What a platform ID must look like before anything is written for it.

IDs become keys and columns of the store (128 characters wide): an ID that is empty, longer,
or holds a control character (a NUL byte, which PostgreSQL refuses and SQLite keeps) is not
one a platform sends, so the event carrying it is logged and acknowledged, never answered.
Checked the same way whatever the database.
"""

from __future__ import annotations

MAX_ID = 128


def usable_id(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_ID
        and value.isprintable()
        and not value.isspace()
    )


def clean_text(text: str) -> str:
    """Message text without NUL bytes (nothing a person types; PostgreSQL refuses them)."""
    return text.replace("\x00", "")
