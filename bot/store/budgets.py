"""Budget limits changed at run time, kept in the database so that every replica sees them."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal, InvalidOperation

from sqlalchemy import delete, select

from bot.budget.policy import (
    FALLBACKS,
    LIMIT_KINDS,
    MODEL_SCOPES,
    MODELS,
    SCOPES,
    TIMEZONE,
    ZONE_SCOPES,
    Value,
)
from bot.config.tables import zone_name
from bot.errors import StoreError
from bot.store.db import DB_ERRORS, Database, describe
from bot.store.schema import BudgetLimit

REMOVED = ("-", "none", "off")
"""What an admin types as a value to remove a limit (the config file's applies again)."""


def model_names(value: str) -> tuple[str, ...]:
    """``"gpt-4o-mini, gpt-5-mini"`` -> the names, in order, each once."""
    names = dict.fromkeys(n for n in value.replace(",", " ").split() if n)
    if not names:
        raise ValueError("name at least one model, e.g. gpt-4o-mini,gpt-5-mini")
    return tuple(names)


def check(scope: str, kind: str, value: str | None) -> Decimal | str | None:
    """Validate an admin's input; raises ValueError with a message for that admin. A number
    for a limit, a zone name for ``timezone``; None for ``models`` (checked by
    :func:`model_names`) and for a removal."""
    name, colon, instance = scope.partition(":")
    if name not in SCOPES or (colon and not instance):
        raise ValueError(
            f"unknown scope {scope!r}: use {', '.join(SCOPES)}, optionally with an ID "
            "(channel:C0123)"
        )
    if kind in (MODELS, FALLBACKS):
        if name not in MODEL_SCOPES:
            raise ValueError(f"{kind} are chosen per {' or '.join(MODEL_SCOPES)}, not per {name}")
        return None
    if kind == TIMEZONE:
        if name not in ZONE_SCOPES:
            raise ValueError(
                f"a time zone is set per workspace (its channels and users count its days) or "
                f"per model, not per {name}"
            )
        return None if value is None else zone_name(value)
    if kind not in LIMIT_KINDS:
        raise ValueError(
            f"unknown limit {kind!r}: use one of {', '.join(LIMIT_KINDS)}, {MODELS}, "
            f"{FALLBACKS} or {TIMEZONE}"
        )
    if value is None:
        return None
    try:
        number = Decimal(value.removeprefix("$").replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None
    if not number.is_finite() or number < 0 or (number == 0 and kind == "weight"):
        raise ValueError(f"{value!r} is not a usable {kind}")
    counted = not kind.startswith("spend") and kind != "weight"
    if counted and (number != number.to_integral() or number < 1):
        # 0 requests a minute would read as no limit at all: "off" says that.
        raise ValueError(
            f"{kind} is a whole number of at least 1 (or off to remove it); got {value!r}"
        )
    return number


class BudgetLimitStore:
    def __init__(self, db: Database):
        self.db = db

    async def all(self) -> dict[str, dict[str, Value]]:
        try:
            async with self.db.session() as s:
                rows = (await s.scalars(select(BudgetLimit))).all()
        except DB_ERRORS as exc:
            raise StoreError(f"Could not read budget limits: {describe(exc)}") from exc
        out: dict[str, dict[str, Value]] = defaultdict(dict)
        for row in rows:
            if row.kind in (MODELS, FALLBACKS):
                out[row.scope][row.kind] = model_names(row.value)
            elif row.kind == TIMEZONE:
                out[row.scope][row.kind] = row.value
            else:
                out[row.scope][row.kind] = Decimal(row.value)
        return dict(out)

    async def set(self, scope: str, kind: str, value: str | None, *, by: str | None = None) -> None:
        """Set one limit; None removes it (the config file's, if any, applies again)."""
        number = check(scope, kind, value)
        text = str(number)
        if kind in (MODELS, FALLBACKS) and value is not None:
            text = ",".join(model_names(value))
        try:
            async with self.db.session() as s, s.begin():
                if value is None:
                    await s.execute(
                        delete(BudgetLimit).where(
                            BudgetLimit.scope == scope, BudgetLimit.kind == kind
                        )
                    )
                    return
                row = await s.get(BudgetLimit, (scope, kind))
                if row is None:
                    s.add(BudgetLimit(scope=scope, kind=kind, value=text, updated_by=by))
                else:
                    row.value, row.updated_by = text, by
        except DB_ERRORS as exc:
            raise StoreError(f"Could not save the budget limit: {describe(exc)}") from exc
