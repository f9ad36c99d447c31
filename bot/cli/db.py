"""The database schema: upgrade, downgrade, current."""

from __future__ import annotations

import argparse
import sys

from sqlalchemy.engine import make_url

from bot.config import Settings
from bot.store import Database, migrate

HELP = "database schema"


def add_arguments(p: argparse.ArgumentParser) -> None:
    dbsub = p.add_subparsers(dest="db_command", required=True)
    up = dbsub.add_parser("upgrade", help="apply migrations")
    up.add_argument("revision", nargs="?", default="head")
    down = dbsub.add_parser("downgrade", help="revert migrations")
    down.add_argument("revision", help='target revision, e.g. "base"')
    down.add_argument("--yes", action="store_true", help="do not ask before deleting usage data")
    dbsub.add_parser("current", help="show the schema revision")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    async with Database(settings.store.sqlalchemy_url) as db:
        if args.db_command == "upgrade":
            await migrate.upgrade(db, args.revision)
        elif args.db_command == "downgrade":
            if args.revision.startswith("base") and not (args.yes or _confirmed(db)):
                print("quotabot: nothing was changed", file=sys.stderr)
                return 1
            await migrate.downgrade(db, args.revision)
        print(f"schema revision: {await migrate.current(db) or 'none'} (head: {migrate.head()})")
    return 0


def _confirmed(db: Database) -> bool:
    """Downgrading to base drops every table, usage records included: ask first."""
    where = make_url(db.url).render_as_string(hide_password=True)
    if not sys.stdin.isatty():
        print(
            f"quotabot: `db downgrade base` deletes every usage record in {where}; "
            "run it with --yes to go ahead",
            file=sys.stderr,
        )
        return False
    answer = input(f"This deletes every usage record in {where}. Type yes to go ahead: ")
    return answer.strip().lower() == "yes"
