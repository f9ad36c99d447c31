"""Any number of workspaces: bolt's OAuth flow, installations kept in quotabot's database,
and the bot's Web API client for each workspace."""

from __future__ import annotations

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.slack.config import INSTALL_PATH, REDIRECT_PATH, SlackConfig
from bot.errors import ConfigError, DigestError


def oauth_settings(config: SlackConfig, engine: AsyncEngine | None) -> AsyncOAuthSettings | None:
    """Multi-workspace mode: bolt's own OAuth flow, with its stores on quotabot's database
    (tables made by quotabot's migrations), so that every replica sees every installation."""
    if config.client_id is None:
        return None
    if config.client_secret is None or engine is None:
        raise ConfigError("Slack OAuth needs SLACK_CLIENT_SECRET beside SLACK_CLIENT_ID")
    return AsyncOAuthSettings(
        client_id=config.client_id,
        client_secret=config.client_secret,
        scopes=list(config.scopes),
        redirect_uri=config.redirect_uri,
        install_path=INSTALL_PATH,
        redirect_uri_path=REDIRECT_PATH,
        installation_store=AsyncSQLAlchemyInstallationStore(
            client_id=config.client_id, engine=engine
        ),
        state_store=AsyncSQLAlchemyOAuthStateStore(expiration_seconds=600, engine=engine),
    )


def routes(app: AsyncApp) -> list[web.RouteDef]:
    """The "Add to Slack" page and Slack's redirect back, when OAuth is on."""
    if app.oauth_flow is None:
        return []

    async def handle(request: web.Request) -> web.Response:
        flow = app.oauth_flow
        assert flow is not None
        bolt_request = await to_bolt_request(request)
        if request.path == flow.install_path:
            return await to_aiohttp_response(await flow.handle_installation(bolt_request))
        return await to_aiohttp_response(await flow.handle_callback(bolt_request))

    return [web.get(INSTALL_PATH, handle), web.get(REDIRECT_PATH, handle)]


async def client_for(app: AsyncApp, workspace: str) -> AsyncWebClient:
    """The bot's Web API client in ``workspace``: with one configured token, the app's;
    with OAuth installs, one with the token stored at that workspace's install."""
    store = app.installation_store
    if store is None:
        return app.client
    bot = await store.async_find_bot(enterprise_id=None, team_id=workspace)
    if bot is None:
        raise DigestError(
            f"quotabot is not installed in Slack workspace {workspace} (any more): "
            "reinstall it there, or switch its digest off."
        )
    base = app.client
    return AsyncWebClient(
        token=bot.bot_token,
        base_url=base.base_url,
        session=base.session,
        retry_handlers=base.retry_handlers,
    )
