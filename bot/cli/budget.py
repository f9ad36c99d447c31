"""Budget limits: show them, change them at run time."""

from __future__ import annotations

import argparse
import getpass
import sys

from bot.app import open_app
from bot.budget.limits import local_time
from bot.budget.policy import FALLBACKS, MODELS, Limits, Who
from bot.chat.commands import check_models
from bot.config import Settings
from bot.messages import used_of
from bot.store.budgets import REMOVED

HELP = "budget limits: show them, change them at run time"


def add_arguments(p: argparse.ArgumentParser) -> None:
    budsub = p.add_subparsers(dest="budget_command", required=True)
    show = budsub.add_parser("show", help="the limits a request is under, and their use now")
    for flag, default in (
        ("platform", "terminal"),
        ("workspace", "local"),
        ("channel", "terminal"),
        ("user", None),
        ("model", None),
    ):
        show.add_argument(f"--{flag}", default=default)
    bset = budsub.add_parser("set", help="set a limit for every replica, over the config file's")
    bset.add_argument("scope", help="model, workspace, channel or user, or one by ID: channel:C1")
    bset.add_argument(
        "kind", help="rpm, tpm, rpd, tokens_day, tokens_week, spend_day, ..., models or timezone"
    )
    bset.add_argument("value", help="a number, or for models their names: gpt-4o-mini,gpt-5-mini")
    budsub.add_parser("list", help="every limit set with `budget set`, and the config file's")
    unset = budsub.add_parser("unset", help="remove a limit set with `budget set`")
    unset.add_argument("scope")
    unset.add_argument("kind")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    async with open_app(settings, provider_keys=False) as app:
        if args.budget_command == "list":
            return _list(settings.budget.limit_values(), await app.limits.all())
        if args.budget_command in ("set", "unset"):
            value = args.value if args.budget_command == "set" else None
            value = None if value in REMOVED else value
            try:
                if args.kind in (MODELS, FALLBACKS) and value is not None:
                    check_models(app.catalog, value)
                await app.limits.set(args.scope, args.kind, value, by=getpass.getuser())
            except ValueError as exc:
                print(f"quotabot: {exc}", file=sys.stderr)
                return 2
            print(f"{args.scope} {args.kind}: {value if value is not None else 'unset'}")
            return 0
        await app.budget.reload()
        who = Who(args.platform, args.workspace, args.channel, args.user or getpass.getuser())
        model = app.catalog.get(args.model or settings.defaults.model)
        for line in await app.budget.status(who, model):
            at = line.resets_at
            resets = f"  (resets {at:%Y-%m-%d} {local_time(at)})" if at else ""
            print(
                f"{line.label}: {used_of(line.used, line.limit, line.unit)} "
                f"({line.share:.0%}){resets}"
            )
        allowed, _ = await app.budget.allowed_models(who)
        print(f"models allowed: {'any' if allowed is None else ', '.join(sorted(allowed))}")
    return 0


def _list(config: Limits, run_time: Limits) -> int:
    """One line per limit: scope, limit, value, and where it was set (run time wins)."""
    rows = [
        (scope, kind, _shown(value), "budget set")
        for scope, limits in sorted(run_time.items())
        for kind, value in sorted(limits.items())
    ]
    rows += [
        (
            scope,
            kind,
            _shown(value),
            "config file"
            + ("" if scope not in run_time or kind not in run_time[scope] else " (overridden)"),
        )
        for scope, limits in sorted(config.items())
        for kind, value in sorted(limits.items())
        if value is not None
    ]
    if not rows:
        print("No limits are set: `quotabot budget set SCOPE LIMIT VALUE` sets one.")
        return 0
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _shown(value: object) -> str:
    return ",".join(value) if isinstance(value, list | tuple) else str(value)
