"""Logging for quotabot processes: text for people, or one JSON object per line for log
pipelines, each line carrying the id of the chat request it belongs to.

The id is set once, where a request enters the core (``Service.handle``), in a context
variable: every line logged while answering it, in any task it starts, carries it, and the
request's usage rows store the same id. Message text is never logged.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "quotabot_request_id", default=None
)
_NOISY = ("alembic", "httpx", "httpcore", "aiohttp.access")
PAYLOAD_LOGGERS = (
    "aiosqlite",  # every statement with its parameters
    "sqlalchemy.engine",  # the same, when echo is on
    "slack_bolt",  # request bodies
    "slack_sdk",  # Web API calls with their arguments (message text)
    "discord.gateway",  # received payloads (with enable_debug_events)
    "discord.http",  # request bodies
    "hpack",  # header blocks
)
"""Libraries whose DEBUG lines carry event payloads or message text: never below INFO, even
with ``--verbose``, so that no prompt or answer reaches a log."""
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


class _RequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "request_id", None):
            out["request_id"] = record.request_id  # type: ignore[attr-defined]
        for key, value in vars(record).items():  # extra={...} fields
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool) else repr(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure(level: str, fmt: LogFormat = "text", *, verbose: bool = False) -> None:
    """Log to stderr at ``level``; ``verbose`` adds DEBUG and the per-request HTTP lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestId())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else level.upper())
    # One line per HTTP request or migration step drowns everything else: keep those quiet.
    if not verbose:
        for noisy in _NOISY:
            logging.getLogger(noisy).setLevel(logging.WARNING)
    quiet_payload_loggers()


def quiet_payload_loggers() -> None:
    """No DEBUG lines from the libraries that would log payloads (``PAYLOAD_LOGGERS``); a
    logger already quieter (SQLAlchemy's engine logs SQL at INFO: WARNING) stays so."""
    for name in PAYLOAD_LOGGERS:
        logger = logging.getLogger(name)
        # Set on the logger itself, so that a root level changed later cannot lower it.
        logger.setLevel(max(logging.INFO, logger.getEffectiveLevel()))
