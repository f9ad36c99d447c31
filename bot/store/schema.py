"""Tables. Changing one means a new Alembic revision in ``migrations/versions``."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    Unicode,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend: SQLite has no time zones and hands back naive ones."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware one (UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit id.
_BigId = BigInteger().with_variant(Integer(), "sqlite")

MONEY_SCALE = 10
_UNITS = Decimal(10) ** MONEY_SCALE


class Money(TypeDecorator[Decimal]):
    """USD as an exact ``Decimal``, to 1e-10 (one token of the cheapest model costs 1e-7).

    PostgreSQL stores NUMERIC(20, 10). SQLite has no exact decimal type (NUMERIC there means
    floating point), so it stores whole units of 1e-10 USD in the same NUMERIC column: integers,
    which SQLite adds up exactly. Wrap SQL sums in ``type_coerce(..., Money())`` to get USD back.
    """

    impl = Numeric(20, MONEY_SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(20, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = Decimal(value).quantize(Decimal(1).scaleb(-MONEY_SCALE))
        return int(value * _UNITS) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)) / _UNITS
        return Decimal(value)


class Base(DeclarativeBase):
    pass


class UsageRecord(Base):
    """One provider call: who asked, what it cost, how it went."""

    __tablename__ = "usage"
    __table_args__ = (
        # The dashboard's failures (migration 0011): a few percent of the rows.
        Index(
            "ix_usage_failed",
            "workspace",
            "created_at",
            postgresql_where=text("outcome NOT IN ('ok', 'stopped')"),
            sqlite_where=text("outcome NOT IN ('ok', 'stopped')"),
        ),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(64), unique=True)
    """Unique per provider call, so a replayed write can never count a call twice."""
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    platform: Mapped[str] = mapped_column(String(32))
    workspace: Mapped[str] = mapped_column(String(128), index=True)
    channel: Mapped[str] = mapped_column(String(128))
    thread: Mapped[str | None] = mapped_column(String(128))
    user: Mapped[str] = mapped_column(String(128))
    model: Mapped[str] = mapped_column(String(128))
    provider: Mapped[str] = mapped_column(String(64), server_default="default")
    """The ``[providers."NAME"]`` that served the call ("default": OPENAI_BASE_URL's)."""
    endpoint: Mapped[str] = mapped_column(String(16))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Of prompt_tokens, those read from the provider's cache (migration 0008)."""
    reasoning_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Of completion_tokens, a reasoning model's hidden reasoning (migration 0008)."""
    cost: Mapped[Decimal | None] = mapped_column(Money())
    """USD; NULL when the model has no configured price."""
    usage_estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str] = mapped_column(String(32))
    retries: Mapped[int] = mapped_column(Integer, default=0)
    provider_request_id: Mapped[str | None] = mapped_column(String(128))
    prompt_text: Mapped[str | None] = mapped_column(Text)
    reply_text: Mapped[str | None] = mapped_column(Text)
    audio_seconds: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    """Seconds of audio transcribed by this call (migration 0006); 0 for text calls."""


class BudgetLimit(Base):
    """A limit set at run time by an admin; it wins over the config file's."""

    __tablename__ = "budget_limits"

    scope: Mapped[str] = mapped_column(String(200), primary_key=True)
    """As in the config file: "channel", "channel:C0123", "model:gpt-4", ..."""
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    """Exact decimal text (limits are whole numbers, USD amounts and weights), or the names of
    the models allowed, comma-separated (kind ``models``)."""
    updated_by: Mapped[str | None] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=lambda: datetime.now(UTC), onupdate=lambda: datetime.now(UTC)
    )


class BudgetRequest(Base):
    """Someone refused by a cap asked the admins for more; once granted, the cap is that much
    higher until its window ends (the day or month it was asked in)."""

    __tablename__ = "budget_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(32))
    workspace: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(128))
    requested_by: Mapped[str] = mapped_column(String(128))
    cap_key: Mapped[str] = mapped_column(String(300), index=True)
    """The cap's counter (bot.budget.limits.Cap.key): what a grant raises."""
    label: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(16))
    amount: Mapped[str] = mapped_column(String(64))
    """Exact decimal text, in the cap's unit (USD, tokens or requests)."""
    reason: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    """The end of the cap's window when asked: a grant lapses with it, so does a request."""
    tz: Mapped[str] = mapped_column(String(64), default="UTC", server_default=text("'UTC'"))
    """The cap's time zone, in which ``expires_at`` is shown."""
    status: Mapped[str] = mapped_column(String(16), default="pending")
    """pending, granted or denied."""
    decided_by: Mapped[str | None] = mapped_column(String(128))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AnswerFeedback(Base):
    """A person's 👍 (1) or 👎 (-1) on an answer (its request id); one per person and
    answer, replaced when they change their mind."""

    __tablename__ = "answer_feedback"
    __table_args__ = (
        Index("ix_answer_feedback_workspace_rated_at", "platform", "workspace", "rated_at"),
    )

    answer: Mapped[str] = mapped_column(String(64), primary_key=True)
    user: Mapped[str] = mapped_column(String(128), primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    workspace: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(128))
    rating: Mapped[int] = mapped_column(Integer)
    rated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SeenEvent(Base):
    """Chat events already taken on: a platform's retry, or a second replica, finds it here.

    While an event is being answered, its row also holds the event itself and a lease that the
    answering process keeps renewing (migration 0007): if that process dies, another one takes
    the event over when the lease has run out (``bot.takeover``). Both are cleared when done.
    """

    __tablename__ = "seen_events"
    __table_args__ = (
        Index(
            "ix_seen_events_open",
            "lease_until",
            sqlite_where=text("lease_until IS NOT NULL"),
            postgresql_where=text("lease_until IS NOT NULL"),
        ),
    )

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    owner: Mapped[str | None] = mapped_column(String(64))
    """The process answering the event (a random id per process)."""
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """NULL once done (or for events nobody would take over)."""
    payload: Mapped[str | None] = mapped_column(Text)
    """The event as JSON, for the process that takes it over; NULL once done."""
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Times the event was taken over from a dead process."""


class ChannelSetting(Base):
    """Per-channel overrides; a NULL column means: use the configured default."""

    __tablename__ = "channel_settings"

    platform: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace: Mapped[str] = mapped_column(String(128), primary_key=True)
    channel: Mapped[str] = mapped_column(String(128), primary_key=True)
    model: Mapped[str | None] = mapped_column(String(128))
    system_prompt: Mapped[str | None] = mapped_column(Text)
    max_tokens: Mapped[int | None] = mapped_column(Integer)
    temperature: Mapped[float | None] = mapped_column(Float)
    enabled: Mapped[bool | None] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=lambda: datetime.now(UTC), onupdate=lambda: datetime.now(UTC)
    )


class DigestSetting(Base):
    """Where and when a workspace's (or Discord server's) daily digest goes."""

    __tablename__ = "digest_settings"

    platform: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace: Mapped[str] = mapped_column(String(128), primary_key=True)
    channel: Mapped[str] = mapped_column(String(128))
    """Where the digest, and the budget alerts, are posted."""
    at: Mapped[str] = mapped_column(String(5), default="09:00")
    """Local time of day, HH:MM."""
    tz: Mapped[str] = mapped_column(String(64), default="UTC")
    """IANA time zone name: the digest's day boundaries and its posting time follow it."""
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_by: Mapped[str | None] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=lambda: datetime.now(UTC), onupdate=lambda: datetime.now(UTC)
    )


class DigestReport(Base):
    """A workspace's weekly or monthly report: posted in its digest channel (DigestSetting)."""

    __tablename__ = "digest_reports"

    platform: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace: Mapped[str] = mapped_column(String(128), primary_key=True)
    period: Mapped[str] = mapped_column(String(8), primary_key=True)
    """``week`` or ``month``."""
    weekday: Mapped[int] = mapped_column(Integer, default=0)
    """A weekly report's day, Monday 0 to Sunday 6; a monthly one goes out on the 1st."""
    at: Mapped[str] = mapped_column(String(5), default="09:00")
    tz: Mapped[str] = mapped_column(String(64), default="UTC")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_by: Mapped[str | None] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=lambda: datetime.now(UTC), onupdate=lambda: datetime.now(UTC)
    )


class Claim(Base):
    """Who sends a digest or an alert: the first to insert its key. ``done_at`` is set once it
    is sent; a claim left without it past its lease (its sender died) may be taken over."""

    __tablename__ = "claims"

    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    """``digest:slack:T123:2026-11-24``, ``alert:slack:T123:ws:...:spend_month:2026-11:80``."""
    claimed_by: Mapped[str] = mapped_column(String(128))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    result: Mapped[str | None] = mapped_column(String(250))
    """What was posted (the platform's message id), or why it was given up."""


class RequestEvent(Base):
    """Requests that never became a provider call, or waited first: for the digest's counts."""

    __tablename__ = "request_events"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    platform: Mapped[str] = mapped_column(String(32))
    workspace: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(128))
    user: Mapped[str] = mapped_column(String(128))
    model: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    """``queued`` (waited for budget), ``refused`` (a cap had no room) or ``fallback`` (another
    model answered; ``model`` is the one asked for). Each at most once per request."""


class _Measures:
    """What a rollup row adds up, for the calls of its hour and key."""

    requests: Mapped[int] = mapped_column(Integer, default=0)
    """Calls that succeeded (answered requests)."""
    calls: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    rate_limited: Mapped[int] = mapped_column(Integer, default=0)
    retried: Mapped[int] = mapped_column(Integer, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    """USD of the priced calls; unpriced ones are counted in ``unpriced``."""
    unpriced: Mapped[int] = mapped_column(Integer, default=0)
    audio_seconds: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    cached_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class UsageHourly(_Measures, Base):
    """Usage per UTC hour, workspace, channel, user and model, kept up to date as usage rows
    are written (same transaction). Hours, not days: a local day in any zone is a range of
    whole UTC hours (or, in zones 30 or 45 minutes off, whole hours plus two partial ones,
    read from the raw rows). Kept when raw rows are pruned."""

    __tablename__ = "usage_hourly"

    platform: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace: Mapped[str] = mapped_column(String(128), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    channel: Mapped[str] = mapped_column(String(128), primary_key=True)
    user: Mapped[str] = mapped_column(String(128), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64), primary_key=True, server_default="default")


class UsageQuarterModel(_Measures, Base):
    """The same per quarter hour (UTC), workspace and model only: what day totals, month to
    date and the 14-day chart read, a few rows per slot whatever the number of channels and
    users. Quarter hours: every zone's local day is a whole number of them."""

    __tablename__ = "usage_quarter_model"

    platform: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace: Mapped[str] = mapped_column(String(128), primary_key=True)
    slot: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64), primary_key=True, server_default="default")


APSCHEDULER_JOBS = Table(
    # APScheduler 3's SQLAlchemyJobStore table, declared here so that Alembic creates and
    # knows it (the job store's own create(checkfirst=True) then finds it and does nothing).
    "apscheduler_jobs",
    Base.metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)
