"""A local OpenAI-compatible server for demos, tests and benchmarks.

It answers /v1/chat/completions, /v1/completions and /v1/audio/transcriptions as OpenAI does,
including its rate limits, headers and error bodies, with deterministic replies and optional
injected faults, so quotabot can be exercised end to end without a key or a bill.
"""

from bot.sandbox.app import create_app
from bot.sandbox.config import SandboxConfig
from bot.sandbox.server import SandboxServer, run_sandbox
from bot.sandbox.stats import ModelStats, SandboxStats

__all__ = [
    "ModelStats",
    "SandboxConfig",
    "SandboxServer",
    "SandboxStats",
    "create_app",
    "run_sandbox",
]
