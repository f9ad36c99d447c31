"""The database schema: upgrade, downgrade, current."""

from __future__ import annotations

import argparse

from bot.config import Settings
from bot.store import Database, migrate

HELP = "database schema"


def add_arguments(p: argparse.ArgumentParser) -> None:
    dbsub = p.add_subparsers(dest="db_command", required=True)
    up = dbsub.add_parser("upgrade", help="apply migrations")
    up.add_argument("revision", nargs="?", default="head")
    down = dbsub.add_parser("downgrade", help="revert migrations")
    down.add_argument("revision", help='target revision, e.g. "base"')
    dbsub.add_parser("current", help="show the schema revision")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    async with Database(settings.sqlalchemy_url) as db:
        if args.db_command == "upgrade":
            await migrate.upgrade(db, args.revision)
        elif args.db_command == "downgrade":
            await migrate.downgrade(db, args.revision)
        print(f"schema revision: {await migrate.current(db) or 'none'} (head: {migrate.head()})")
    return 0
