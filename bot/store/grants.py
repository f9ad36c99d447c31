"""Requests for more budget, and the grants admins make of them, in the database so that every
replica's budget sees a grant (``Budget`` reads ``BudgetRequests.in_force`` as it reads limits).

    refused by a cap -> [offer(cap): offered, where a button holds only its id]
                     -> ask(cap, amount, reason): pending, lapses with the cap's window
    an admin decides once -> granted (the cap is that much higher until the window ends)
                           | denied
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import delete, select, update

from bot.budget.limits import zone_info, zone_of
from bot.errors import StoreError
from bot.store.db import DB_ERRORS, Database, describe
from bot.store.schema import BudgetRequest

REASON_MOST = 500
"""Characters of a reason kept (and shown to admins)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    id: int
    platform: str
    workspace: str
    channel: str
    requested_by: str
    cap_key: str
    label: str
    unit: str
    amount: Decimal
    reason: str
    expires_at: datetime
    status: str
    decided_by: str | None
    requested_at: datetime
    decided_at: datetime | None


class AlreadyDecided(ValueError):
    """A second decision on one request (two admins, or one clicking twice)."""

    def __init__(self, request: Request):
        super().__init__(f"This request was already {request.status} by {request.decided_by}.")
        self.request = request


def amount_of(text: str, unit: str) -> Decimal:
    """A requested amount as typed ("0.50", "$2", "10,000"); raises ValueError saying why."""
    try:
        number = Decimal(text.strip().removeprefix("$").replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"{text!r} is not an amount: write a number, e.g. 0.50") from None
    if not number.is_finite() or number <= 0:
        raise ValueError(f"{text!r} is not an amount more than zero")
    if unit != "usd" and number != number.to_integral():
        raise ValueError(f"{unit} come whole: {text!r} is not a whole number")
    return number


class BudgetRequests:
    def __init__(self, db: Database):
        self.db = db

    async def ask(
        self,
        *,
        platform: str,
        workspace: str,
        channel: str,
        user: str,
        cap_key: str,
        label: str,
        unit: str,
        amount: Decimal,
        reason: str,
        expires_at: datetime,
    ) -> Request:
        row = BudgetRequest(
            platform=platform,
            workspace=workspace,
            channel=channel,
            requested_by=user,
            cap_key=cap_key,
            label=label,
            unit=unit,
            amount=str(amount),
            reason=reason.strip()[:REASON_MOST],
            expires_at=expires_at,
            tz=zone_of(expires_at),
            status="pending",
            requested_at=datetime.now(UTC),
        )
        try:
            async with self.db.session() as s, s.begin():
                s.add(row)
                await s.flush()
                return _request(row)
        except DB_ERRORS as exc:
            raise StoreError(
                f"Could not save the request for more budget: {describe(exc)}"
            ) from exc

    async def offer(
        self,
        *,
        platform: str,
        workspace: str,
        channel: str,
        user: str,
        cap_key: str,
        label: str,
        unit: str,
        expires_at: datetime,
    ) -> int:
        """Keep a "Request more" offer (status ``offered``) for a platform whose buttons carry
        only a short id: Discord's custom_id holds 100 characters, less than a cap key and its
        label, and any replica may take the click. Offers whose window is over are dropped."""
        now = datetime.now(UTC)
        row = BudgetRequest(
            platform=platform,
            workspace=workspace,
            channel=channel,
            requested_by=user,
            cap_key=cap_key,
            label=label,
            unit=unit,
            amount="0",
            reason="",
            expires_at=expires_at,
            tz=zone_of(expires_at),
            status="offered",
            requested_at=now,
        )
        try:
            async with self.db.session() as s, s.begin():
                await s.execute(
                    delete(BudgetRequest).where(
                        BudgetRequest.status == "offered", BudgetRequest.expires_at <= now
                    )
                )
                s.add(row)
                await s.flush()
                return row.id
        except DB_ERRORS as exc:
            raise StoreError(f"Could not keep the offer of more budget: {describe(exc)}") from exc

    async def get(self, request_id: int) -> Request | None:
        async with self.db.session() as s:
            row = await s.get(BudgetRequest, request_id)
        return _request(row) if row is not None else None

    async def decide(self, request_id: int, *, grant: bool, by: str) -> Request:
        """Grant or deny a pending request, once: raises AlreadyDecided for a second decision
        (the update only matches a pending row, so two admins at once cannot both decide),
        LookupError for an unknown one."""
        status = "granted" if grant else "denied"
        try:
            async with self.db.session() as s, s.begin():
                done = await s.execute(
                    update(BudgetRequest)
                    .where(BudgetRequest.id == request_id, BudgetRequest.status == "pending")
                    .values(status=status, decided_by=by, decided_at=datetime.now(UTC))
                )
                row = await s.get(BudgetRequest, request_id, populate_existing=True)
        except DB_ERRORS as exc:
            raise StoreError(f"Could not record the decision: {describe(exc)}") from exc
        if row is None:
            raise LookupError(f"no request {request_id}")
        request = _request(row)
        if not done.rowcount:  # type: ignore[attr-defined]
            raise AlreadyDecided(request)
        return request

    async def in_force(self, now: datetime | None = None) -> dict[str, Decimal]:
        """What grants add to each cap now (by cap key, in the cap's unit)."""
        now = now or datetime.now(UTC)
        try:
            async with self.db.session() as s:
                rows = (
                    await s.execute(
                        select(BudgetRequest.cap_key, BudgetRequest.amount).where(
                            BudgetRequest.status == "granted", BudgetRequest.expires_at > now
                        )
                    )
                ).all()
        except DB_ERRORS as exc:
            raise StoreError(f"Could not read budget grants: {describe(exc)}") from exc
        extra: dict[str, Decimal] = defaultdict(Decimal)
        for key, amount in rows:
            extra[key] += Decimal(amount)
        return dict(extra)

    async def active(self, platform: str, workspace: str) -> list[Request]:
        """The grants in force in ``workspace`` now (their caps' windows not over)."""
        now = datetime.now(UTC)
        async with self.db.session() as s:
            rows = (
                await s.scalars(
                    select(BudgetRequest)
                    .where(
                        BudgetRequest.platform == platform,
                        BudgetRequest.workspace == workspace,
                        BudgetRequest.status == "granted",
                        BudgetRequest.expires_at > now,
                    )
                    .order_by(BudgetRequest.id)
                )
            ).all()
        return [_request(r) for r in rows]

    async def granted(
        self, platform: str, workspace: str, *, since: datetime, until: datetime | None = None
    ) -> list[Request]:
        """The grants made in ``workspace`` between ``since`` and ``until``, oldest first."""
        where = [
            BudgetRequest.platform == platform,
            BudgetRequest.workspace == workspace,
            BudgetRequest.status == "granted",
            BudgetRequest.decided_at >= since,
        ]
        if until is not None:
            where.append(BudgetRequest.decided_at < until)
        async with self.db.session() as s:
            rows = (
                await s.scalars(select(BudgetRequest).where(*where).order_by(BudgetRequest.id))
            ).all()
        return [_request(r) for r in rows]


def _request(row: BudgetRequest) -> Request:
    return Request(
        id=row.id,
        platform=row.platform,
        workspace=row.workspace,
        channel=row.channel,
        requested_by=row.requested_by,
        cap_key=row.cap_key,
        label=row.label,
        unit=row.unit,
        amount=Decimal(row.amount),
        reason=row.reason,
        expires_at=row.expires_at.astimezone(zone_info(row.tz)),
        status=row.status,
        decided_by=row.decided_by,
        requested_at=row.requested_at,
        decided_at=row.decided_at,
    )
