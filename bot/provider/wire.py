"""How one kind of server is addressed: where each call goes, and how the key is sent.

A :class:`Wire` is the one thing that differs between the kinds of provider; the client,
the bodies, the parsing and the errors are the same for all (Azure answers with OpenAI's
JSON shapes and ``x-ratelimit-*`` headers). Implemented by :class:`OpenAIWire` (OpenAI and
the servers that imitate it: vLLM, llama.cpp, Ollama, proxies) and
``bot.provider.azure.AzureWire`` (Azure OpenAI's deployment URLs).
"""

from __future__ import annotations

from typing import Protocol

import httpx


class Wire(Protocol):
    not_found: str
    """What to check when the server answers 404 for a model (ends a sentence)."""

    def url(self, base: httpx.URL, path: str, model: str) -> httpx.URL:
        """Where a call to ``path`` (``/chat/completions``, ``/completions``,
        ``/audio/transcriptions``) for ``model`` goes, below ``base``."""
        ...

    def auth(self, key: str) -> dict[str, str]:
        """The headers that carry ``key``."""
        ...


class OpenAIWire:
    """``{base}/chat/completions`` with ``Authorization: Bearer KEY``."""

    not_found = "Check the model name, and that base_url is the API root (it usually ends in /v1)."

    def url(self, base: httpx.URL, path: str, model: str) -> httpx.URL:
        # copy_with keeps a query in base_url (a proxy's ?key=...) after the new path.
        return base.copy_with(path=base.path.rstrip("/") + path)

    def auth(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}
