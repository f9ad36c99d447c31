"""Which limits a request must fit, from the catalog, the config file and admins' changes.

Scopes, from the widest: the provider account per model, the workspace (or guild), the
channel, the user. Per-minute limits are rates (a request waits for room); per-day, per-week
and per-month totals are caps (a request is refused, with the time they reset). The account's
RPD is a rate, as the provider's own limiter treats it.

Caps count the days, weeks and months of a time zone: a workspace's ``timezone`` for its own,
its channels' and its users' caps; the ``model`` scope's for the models' (the provider
account's, shared by every workspace). UTC where none is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, get_args

from bot.budget.limits import Ask, Cap, Period, Rate, Unit, usd_units
from bot.catalog import ModelInfo

ScopeKind = Literal["model", "workspace", "channel", "user"]
SCOPES: tuple[ScopeKind, ...] = ("model", "workspace", "channel", "user")
LimitKind = Literal[
    "rpm",
    "tpm",
    "rpd",
    "tokens_day",
    "tokens_week",
    "tokens_month",
    "spend_day",
    "spend_week",
    "spend_month",
    "weight",
]
LIMIT_KINDS: tuple[LimitKind, ...] = get_args(LimitKind)
MODELS = "models"
"""Not a limit but set like one: the models a workspace or channel may use."""
MODEL_SCOPES: tuple[ScopeKind, ...] = ("workspace", "channel")
TIMEZONE = "timezone"
"""Not a limit either: the zone whose days, weeks and months the caps count."""
ZONE_SCOPES: tuple[ScopeKind, ...] = ("model", "workspace")
FALLBACKS = "fallbacks"
"""Nor this: the models to answer with instead, in order, when a cap, an outage or a long
wait would stop the one asked for (workspace and channel scopes, as ``models``)."""
SETTINGS: tuple[str, ...] = (*LIMIT_KINDS, MODELS, FALLBACKS, TIMEZONE)
"""Everything ``/budget set`` sets."""

_LABELS: dict[str, str] = {
    "rpm": "requests per minute",
    "tpm": "tokens per minute",
    "rpd": "requests per day",
    "tokens_day": "tokens per day",
    "tokens_week": "tokens per week",
    "tokens_month": "tokens per month",
    "spend_day": "spend per day",
    "spend_week": "spend per week",
    "spend_month": "spend per month",
}
CAPS: dict[str, tuple[Period, Unit]] = {
    "rpd": ("day", "requests"),
    "tokens_day": ("day", "tokens"),
    "tokens_week": ("week", "tokens"),
    "tokens_month": ("month", "tokens"),
    "spend_day": ("day", "usd"),
    "spend_week": ("week", "usd"),
    "spend_month": ("month", "usd"),
}
"""Every cap kind, its window and unit."""


def cap_label(kind: str) -> str:
    """``spend_week`` -> "spend per week"."""
    return _LABELS[kind]


@dataclass(frozen=True, slots=True)
class Who:
    """Where a request comes from; IDs are the platform's own."""

    platform: str
    workspace: str
    channel: str
    user: str

    def instance(self, scope: ScopeKind, model: str) -> str:
        return {
            "model": model,
            "workspace": self.workspace,
            "channel": self.channel,
            "user": self.user,
        }[scope]

    def key(self, scope: ScopeKind, model: str) -> str:
        """Unique name of this scope's counters; platform and workspace keep IDs apart."""
        return {
            "model": f"model:{model}",
            "workspace": f"ws:{self.platform}:{self.workspace}",
            "channel": f"ch:{self.platform}:{self.workspace}:{self.channel}",
            "user": f"user:{self.platform}:{self.workspace}:{self.user}",
        }[scope]

    def where(self, scope: ScopeKind, model: str) -> tuple[tuple[str, str], ...]:
        """The usage rows of this scope."""
        if scope == "model":
            return (("model", model),)
        base = (("platform", self.platform), ("workspace", self.workspace))
        if scope == "workspace":
            return base
        return (*base, (scope, self.instance(scope, model)))

    @property
    def flow(self) -> str:
        """What the fair queue shares between: channels."""
        return self.key("channel", "")


Value = Decimal | int | float | str | tuple[str, ...] | list[str] | None
Limits = Mapping[str, Mapping[str, Value]]
"""``{"channel": {"rpm": 10}, "channel:C123": {"rpm": 30, "models": ("gpt-4o-mini",)},
"workspace": {"timezone": "Europe/Paris"}}``"""


class Policy:
    """Resolves each limit: a specific scope ("channel:C1") before the scope's default
    ("channel"); an admin's change at run time before the config file; for the account's
    RPM/TPM/RPD, the catalog's figure last."""

    def __init__(self, config: Limits, overrides: Limits | None = None):
        self.config = config
        self.overrides: Limits = overrides or {}
        self.grants: Mapping[str, Decimal] = {}
        """What admins granted on top of caps, by cap key, until each cap's window ends."""

    def value(
        self, scope: ScopeKind, instance: str, kind: LimitKind
    ) -> Decimal | int | float | None:
        found = self._find(scope, instance, kind)
        return None if isinstance(found, tuple | list | str) else found

    def zone(self, scope: ScopeKind, instance: str, workspace: str = "") -> str:
        """The time zone of a cap of ``scope``: the model scope's own for a model; else the
        workspace's (``workspace``), which its channels and users share."""
        if scope == "model":
            found = self._find("model", instance, TIMEZONE)
        else:
            found = self._find(
                "workspace", instance if scope == "workspace" else workspace, TIMEZONE
            )
        return found if isinstance(found, str) else "UTC"

    def _find(self, scope: ScopeKind, instance: str, kind: str) -> Value:
        for name in (f"{scope}:{instance}", scope):
            for source in (self.overrides, self.config):
                found = source.get(name, {}).get(kind)
                if found is not None:
                    return found
        return None

    def allowed_models(self, who: Who) -> tuple[frozenset[str] | None, ScopeKind]:
        """The models ``who`` may use (those on every list that applies; None: any), and the
        narrowest scope whose list decided it, for the message that says who can change it."""
        allowed: frozenset[str] | None = None
        where: ScopeKind = "channel"
        for scope in MODEL_SCOPES:
            names = self._find(scope, who.instance(scope, ""), MODELS)
            if isinstance(names, tuple | list):
                allowed = frozenset(names) if allowed is None else allowed & frozenset(names)
                where = scope
        return allowed, where

    def fallbacks(self, who: Who, model: str) -> tuple[str, ...]:
        """The models to try after ``model``, in order: from the narrowest list that applies
        (the channel's, else the workspace's). A list is a chain: a model on it falls back to
        those after it, any other model to all of it."""
        for scope in ("channel", "workspace"):
            names = self._find(scope, who.instance(scope, ""), FALLBACKS)
            if isinstance(names, tuple | list):
                chain = list(names)
                after = chain[chain.index(model) + 1 :] if model in chain else chain
                return tuple(n for n in after if n != model)
        return ()

    def model_rates(self, model: ModelInfo) -> tuple[Rate, ...]:
        """The provider account's buckets for ``model``: what its headers and 429s speak of."""
        catalog = {"rpm": model.limits.rpm, "tpm": model.limits.tpm, "rpd": model.limits.rpd}
        # One bucket per provider account: a model served by two providers (under two names,
        # one per provider) has two. The default provider's keep their names from before.
        account = f"model:{model.name}"
        if model.provider != "default":
            account = f"model:{model.provider}/{model.name}"
        rates = []
        for kind, period, unit in (
            ("rpm", 60.0, "requests"),
            ("tpm", 60.0, "tokens"),
            ("rpd", 86_400.0, "requests"),
        ):
            limit = self.value("model", model.name, kind) or catalog[kind]  # type: ignore[arg-type]
            if limit:
                rates.append(
                    Rate(
                        key=f"{account}:{kind}",
                        limit=int(limit),
                        period=period,
                        unit=unit,  # type: ignore[arg-type]
                        label=f"{model.name} {_LABELS[kind]}",
                        shared=True,
                    )
                )
        return tuple(rates)

    def ask(
        self,
        who: Who,
        model: ModelInfo,
        *,
        tokens: int,
        cost: Decimal | None,
        scopes: tuple[ScopeKind, ...] = SCOPES,
    ) -> Ask:
        """What one call of ``tokens`` (prompt + max_tokens) costing up to ``cost`` takes;
        ``scopes`` narrower than every one: for a page with no channel (Slack's App Home)."""
        rates: list[tuple[Rate, int]] = []
        caps: list[tuple[Cap, int]] = []
        for rate in self.model_rates(model):
            rates.append((rate, tokens if rate.unit == "tokens" else 1))
        for scope in scopes:
            instance = who.instance(scope, model.name)
            base = who.key(scope, model.name)
            name = f"{model.name}" if scope == "model" else f"this {scope}"
            if scope != "model":
                for kind, unit in (("rpm", "requests"), ("tpm", "tokens")):
                    limit = self.value(scope, instance, kind)  # type: ignore[arg-type]
                    if limit:
                        rate = Rate(
                            f"{base}:{kind}",
                            int(limit),
                            60.0,
                            unit,  # type: ignore[arg-type]
                            f"{name}'s {_LABELS[kind]}",
                        )
                        rates.append((rate, tokens if unit == "tokens" else 1))
            zone = self.zone(scope, instance, who.workspace)
            for kind, (period, unit) in CAPS.items():
                if kind == "rpd" and scope == "model":
                    continue  # the account's RPD: a rate (model_rates)
                limit = self.value(scope, instance, kind)  # type: ignore[arg-type]
                if limit is None or (unit == "usd" and model.free):
                    continue  # a free model spends nothing: a spent budget must not stop it
                if unit == "usd":
                    amount, units = usd_units(cost or Decimal(0)), usd_units(Decimal(limit))
                elif unit == "requests":
                    amount, units = 1, int(limit)
                else:
                    amount, units = tokens, int(limit)
                # Built in one place for every kind: each cap counts its own scope's usage rows
                # (an rpd cap once did not, and counted every row of the day after a restart).
                label = f"{name}'s {_LABELS[kind]}"
                if extra := self.grants.get(f"{base}:{kind}"):
                    units += usd_units(extra) if unit == "usd" else int(extra)
                cap = Cap(
                    f"{base}:{kind}", units, period, unit, label, who.where(scope, model.name), zone
                )
                caps.append((cap, amount))
        return Ask(tuple(rates), tuple(caps))

    def weight(self, who: Who) -> float:
        value = self.value("channel", who.channel, "weight")
        return float(value) if value else 1.0
