"""Azure OpenAI's wire format: a deployment per model, an ``api-version`` on every call, the
key in an ``api-key`` header.

    POST {endpoint}/openai/deployments/{deployment}/chat/completions?api-version=2024-10-21
    api-key: KEY

The bodies and answers are OpenAI's (the ``model`` field of a body is ignored: the
deployment decides), and so are the ``x-ratelimit-remaining-*`` headers. A model's deployment
is its name unless ``[models."NAME"]`` says ``deployment = "..."``.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

import httpx


class AzureWire:
    """A :class:`bot.provider.wire.Wire` for one Azure OpenAI resource."""

    not_found = (
        "Check that the resource has a deployment of that name (set deployment in the "
        "model's [models.\"NAME\"] table when it is not the model's name), that base_url is "
        "the resource's endpoint, and that api_version is one Azure knows."
    )

    def __init__(self, *, api_version: str, deployments: Mapping[str, str] | None = None):
        self.api_version = api_version
        self.deployments = dict(deployments or {})
        """Model -> deployment, where they differ."""

    def url(self, base: httpx.URL, path: str, model: str) -> httpx.URL:
        deployment = quote(self.deployments.get(model, model), safe="")
        # The endpoint as the portal shows it, or with /openai already (openai-python's way).
        root = base.path.rstrip("/").removesuffix("/openai")
        url = base.copy_with(path=f"{root}/openai/deployments/{deployment}{path}")
        return url.copy_merge_params({"api-version": self.api_version})

    def auth(self, key: str) -> dict[str, str]:
        return {"api-key": key}
