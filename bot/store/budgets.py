"""Budget limits changed at run time, kept in the database so that every replica sees them."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal, InvalidOperation

from sqlalchemy import delete, select

from bot.budget.policy import LIMIT_KINDS, SCOPES
from bot.errors import StoreError
from bot.store.db import DB_ERRORS, Database
from bot.store.schema import BudgetLimit


def check(scope: str, kind: str, value: str | None) -> Decimal | None:
    """Validate an admin's input; raises ValueError with a message for that admin."""
    name, colon, instance = scope.partition(":")
    if name not in SCOPES or (colon and not instance):
        raise ValueError(
            f"unknown scope {scope!r}: use {', '.join(SCOPES)}, optionally with an ID "
            "(channel:C0123)"
        )
    if kind not in LIMIT_KINDS:
        raise ValueError(f"unknown limit {kind!r}: use one of {', '.join(LIMIT_KINDS)}")
    if value is None:
        return None
    try:
        number = Decimal(value.removeprefix("$").replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None
    if not number.is_finite() or number < 0 or (number == 0 and kind == "weight"):
        raise ValueError(f"{value!r} is not a usable {kind}")
    if not kind.startswith("spend") and kind != "weight" and number != number.to_integral():
        raise ValueError(f"{kind} is a whole number; got {value!r}")
    return number


class BudgetLimitStore:
    def __init__(self, db: Database):
        self.db = db

    async def all(self) -> dict[str, dict[str, Decimal]]:
        try:
            async with self.db.session() as s:
                rows = (await s.scalars(select(BudgetLimit))).all()
        except DB_ERRORS as exc:
            raise StoreError(f"Could not read budget limits: {exc}") from exc
        out: dict[str, dict[str, Decimal]] = defaultdict(dict)
        for row in rows:
            out[row.scope][row.kind] = Decimal(row.value)
        return dict(out)

    async def set(self, scope: str, kind: str, value: str | None, *, by: str | None = None) -> None:
        """Set one limit; None removes it (the config file's, if any, applies again)."""
        number = check(scope, kind, value)
        try:
            async with self.db.session() as s, s.begin():
                if number is None:
                    await s.execute(
                        delete(BudgetLimit).where(
                            BudgetLimit.scope == scope, BudgetLimit.kind == kind
                        )
                    )
                    return
                row = await s.get(BudgetLimit, (scope, kind))
                if row is None:
                    s.add(BudgetLimit(scope=scope, kind=kind, value=str(number), updated_by=by))
                else:
                    row.value, row.updated_by = str(number), by
        except DB_ERRORS as exc:
            raise StoreError(f"Could not save the budget limit: {exc}") from exc
