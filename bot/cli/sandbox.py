"""The local OpenAI-compatible sandbox server."""

from __future__ import annotations

import argparse

from bot.config import Settings
from bot.sandbox import SandboxConfig, run_sandbox

HELP = "run the local OpenAI-compatible sandbox server"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--rpm", type=int, default=60, help="requests per minute per model")
    p.add_argument("--tpm", type=int, default=150_000, help="tokens per minute per model")
    p.add_argument("--rpd", type=int, default=6_000, help="requests per day per model")
    p.add_argument("--quota-tokens", type=int, help="tokens until 429 insufficient_quota")
    p.add_argument(
        "--audio-rpm", type=int, help="transcriptions per minute per model (default: catalog's)"
    )
    p.add_argument(
        "--audio-rpd", type=int, help="transcriptions per day per model (default: catalog's)"
    )
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    p.add_argument("--failure-rate", type=float, default=0.0, help="share of calls that fail")
    p.add_argument("--seed", type=int, default=0, help="seed for replies and faults")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    config = SandboxConfig(
        rpm=args.rpm,
        tpm=args.tpm,
        rpd=args.rpd,
        quota_tokens=args.quota_tokens,
        audio_rpm=args.audio_rpm,
        audio_rpd=args.audio_rpd,
        latency=args.latency,
        failure_rate=args.failure_rate,
        seed=args.seed,
        catalog=settings.provider.catalog(),
        require_key=False,  # OPENAI_BASE_URL alone, with no key set, must work against it
    )
    await run_sandbox(config, args.host, args.port)
    return 0
