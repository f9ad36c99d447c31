"""Slack over HTTP: the signed events/commands/interactivity endpoint in front of bolt."""

from __future__ import annotations

import logging
import traceback

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

from adapters.slack import screen, signing

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"


class SlackEndpoint:
    def __init__(self, app: AsyncApp, signing_secret: str):
        self.app = app
        self.secret = signing_secret

    def routes(self) -> list[web.RouteDef]:
        return [web.post(EVENTS_PATH, self.handle)]

    async def handle(self, request: web.Request) -> web.Response:
        """Events, slash commands and interactivity. The signature is checked here, on the raw
        bytes, and only here: bolt parses first, and raised on bodies that were not UTF-8 or
        not the JSON they claimed to be (its own check is off). What bolt cannot take, or
        quotabot does not listen to, never reaches it (``adapters.slack.screen``)."""
        body = await request.read()  # read by bot.web, within its limits
        if not signing.verified(self.secret, request.headers, body):
            return web.json_response({"error": "invalid request"}, status=401)
        try:
            bolt_request = AsyncBoltRequest(
                body=body.decode(),
                query=request.query_string,
                headers=request.headers,  # type: ignore[arg-type]  # a CIMultiDict of str
            )
            problem = screen.problem(bolt_request.body)
        except UnicodeDecodeError:
            problem = "not UTF-8"
        except RecursionError:
            problem = "nested too deep to parse"
        except (ValueError, TypeError, AttributeError, LookupError) as exc:
            # Not the JSON or form it claims to be, or of a shape bolt's request fails on.
            # The exception's text can quote the body: its type only.
            problem = f"bolt cannot read it ({type(exc).__name__})"
        if problem is not None:
            # Signed by Slack, so worth a line; refused without a retry-inviting 5xx.
            log.warning("signed Slack request of %d bytes refused: %s", len(body), problem)
            return web.json_response({"error": "malformed request"}, status=400)
        if (kind := screen.unhandled(bolt_request.body)) is not None:
            log.info("Slack %s acknowledged: quotabot does not listen to it", kind)
            return web.Response(status=200)
        try:
            response = await self.app.async_dispatch(bolt_request)
        except Exception as exc:  # bolt's own code (its error handler's) on a shape it missed
            where = traceback.extract_tb(exc.__traceback__)[-1]
            log.warning(
                "bolt failed on a signed Slack request of %d bytes: %s at %s:%s",
                len(body),
                type(exc).__name__,
                where.filename.rsplit("/", 1)[-1],
                where.lineno,
            )
            return web.json_response({"error": "malformed request"}, status=400)
        return await to_aiohttp_response(response)
