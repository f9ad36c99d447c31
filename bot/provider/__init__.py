"""OpenAI-compatible HTTP client: chat, streamed chat, legacy completions and audio
transcriptions, on httpx.

It talks to OpenAI and to the servers that imitate it (vLLM, llama.cpp, Ollama). Their quirks
(no rate-limit headers, no ``usage``, extra fields, null ``content`` or ``finish_reason``,
choices without an index) never break a reply.

No retries, anywhere in here. quotabot's budget layer owns every retry, because every attempt
spends requests and tokens that the budget must see; the official SDK's hidden retries multiply
calls behind its back. The transport this client creates is
``httpx.AsyncHTTPTransport(retries=0)`` (httpx's default, spelled out), redirects are not
followed, and every failure is raised at once as one of :mod:`bot.errors`' ``ProviderError``
classes, ``from`` the httpx error or HTTP answer that caused it.

The API key goes into each request's auth header (``Authorization``, or Azure's ``api-key``)
and nowhere else: never into a message, a log line or a ``repr``.

    client.py    OpenAIClient: builds requests, sends each once
    wire.py      Wire: how a kind of server is addressed (OpenAIWire: URLs, bearer key)
    azure.py     AzureWire: Azure OpenAI's deployment URLs, api-version and api-key
    health.py    Health: a provider marked down after failures in a row, up again later
    router.py    Providers: each provider's client, and the one that serves each model
    stream.py    ChatStream: server-sent events -> text deltas -> Completion
    results.py   Completion, Choice, Transcription: successful answers, parsed
    (bot.ratelimits: RateLimitInfo, what the x-ratelimit-* headers said)
    failures.py  failed calls -> bot.errors, with messages that tell an operator what to do
"""

from __future__ import annotations

from bot.provider.azure import AzureWire
from bot.provider.client import OpenAIClient
from bot.provider.health import Health
from bot.provider.results import Choice, Completion, Transcription
from bot.provider.router import Providers
from bot.provider.stream import ChatStream
from bot.provider.wire import OpenAIWire, Wire
from bot.ratelimits import RateLimitInfo, parse_duration

__all__ = [
    "AzureWire",
    "ChatStream",
    "Choice",
    "Completion",
    "Health",
    "OpenAIClient",
    "OpenAIWire",
    "Providers",
    "RateLimitInfo",
    "Transcription",
    "Wire",
    "parse_duration",
]
