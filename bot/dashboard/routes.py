"""The dashboard's and the API's routes, as ``quotabot serve`` adds them to its web server."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from bot.config import Settings
from bot.dashboard.access import Access
from bot.dashboard.api import DashboardAPI
from bot.dashboard.links import links_for
from bot.dashboard.page import DashboardPage
from bot.dashboard.queries import Queries

if TYPE_CHECKING:
    from bot.app import App


def routes(settings: Settings, app: App) -> list[web.RouteDef]:
    """The dashboard's and the API's routes, for ``quotabot serve``."""
    token = settings.web.admin_token
    access = Access(links_for(settings), token.get_secret_value() if token else None)
    queries = Queries(app.db, app.budget, app.digests.builder, costs=app.costs)
    return DashboardAPI(queries, access).routes() + DashboardPage(queries, access).routes()
