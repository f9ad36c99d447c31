"""Providers: each provider's client, and which one serves each model.

A model goes to the provider its ``[models."NAME"]`` table names, else to the default
provider (OPENAI_BASE_URL, or the built-in sandbox). Built by ``bot.app.open_app`` from the
settings; the service asks it for the client of each request's model.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from bot.lifecycle import AsyncResource
from bot.provider.client import OpenAIClient

DEFAULT = "default"


class Providers(AsyncResource):
    """Closing it closes every client it holds."""

    def __init__(
        self,
        clients: Mapping[str, OpenAIClient],
        *,
        routes: Mapping[str, str] | None = None,
        default: str = DEFAULT,
    ) -> None:
        self._clients = dict(clients)
        self.routes = dict(routes or {})
        """Model -> provider, for the models that do not go to the default one."""
        self.default = default
        missing = ({default} | set(self.routes.values())) - self._clients.keys()
        if missing:
            raise ValueError(f"no client for provider(s) {', '.join(sorted(missing))}")

    @classmethod
    def one(cls, client: OpenAIClient) -> Providers:
        """Every model to ``client``: a service built around one client (tests, benchmarks),
        whose maker closes it."""
        return cls({DEFAULT: client})

    def __repr__(self) -> str:
        return f"Providers({', '.join(self._clients)}; default {self.default})"

    def name_for(self, model: str) -> str:
        return self.routes.get(model, self.default)

    def client(self, model: str) -> OpenAIClient:
        """The client of the provider that serves ``model``."""
        return self._clients[self.name_for(model)]

    def __getitem__(self, name: str) -> OpenAIClient:
        return self._clients[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._clients)

    def __len__(self) -> int:
        return len(self._clients)

    def states(self) -> dict[str, bool]:
        """Each provider: True while it is up (see bot.provider.health)."""
        return {name: client.health.up for name, client in self._clients.items()}

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
