"""The admins' dashboard and its JSON API, served by ``quotabot serve`` itself:

links.py   sign-in links: short-lived, signed, naming the workspace they show
access.py  who is asking: a link's session cookie, the link itself, or the operators' token
queries.py what the views show, read from the hourly rollups
api.py     /api/v1/ (JSON, and CSV where a table is asked for)
page.py    /dashboard: one HTML page, charts drawn as SVG on the server
"""

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
