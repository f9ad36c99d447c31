"""Slack's Socket Mode, faked: ``apps.connections.open`` and the WebSocket it hands out.

Plugged into :class:`~fakes.slack_api.FakeSlackAPI` (``api.socket``): the app opens a
connection with its app-level token, gets ``hello``, and then receives envelopes that a test
sends, each of which it must acknowledge with its ``envelope_id``, as Slack requires.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from typing import Any

from aiohttp import WSMsgType, web

DEFAULT_APP_TOKEN = "xapp-1-A0QB0TAPP1-1111111111-fakeapptoken"

JSON = dict[str, Any]


class FakeSocketMode:
    def __init__(self, *, app_token: str = DEFAULT_APP_TOKEN):
        self.app_token = app_token
        self.base_url = ""
        self.opened = 0
        """Calls to apps.connections.open: one per (re)connection."""
        self.acks: list[JSON] = []
        self.stalled = False
        """Connected, but nothing gets through: no events, no pongs (Slack's silent stall)."""
        self._sockets: list[web.WebSocketResponse] = []
        self._tickets = itertools.count(1)
        self._acked = asyncio.Condition()

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/link/", self._link)

    def open(self, token: str | None) -> JSON:
        """The answer to apps.connections.open."""
        if token != self.app_token:
            return {"ok": False, "error": "invalid_auth" if token else "not_authed"}
        self.opened += 1
        ws_url = self.base_url.replace("http://", "ws://")
        return {"ok": True, "url": f"{ws_url}/link/?ticket={next(self._tickets)}"}

    @property
    def connected(self) -> int:
        return sum(1 for ws in self._sockets if not ws.closed)

    async def wait_connected(self, count: int = 1, *, within: float = 5.0) -> None:
        deadline = asyncio.get_running_loop().time() + within
        while self.connected < count or self.opened < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"the app did not open {count} Socket Mode connection(s)")
            await asyncio.sleep(0.02)

    async def send(self, payload: JSON, *, kind: str = "events_api", retry: int = 0) -> str:
        """Deliver ``payload`` (an event_callback, or a slash command's fields) on the newest
        open connection; returns the envelope id the app must acknowledge."""
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "accepts_response_payload": kind != "events_api",
            "payload": payload,
            "retry_attempt": retry,
            "retry_reason": "timeout" if retry else "",
        }
        live = [ws for ws in self._sockets if not ws.closed]
        if not live:
            raise AssertionError("no Socket Mode connection is open")
        await live[-1].send_str(json.dumps(envelope))
        return envelope_id

    async def wait_ack(self, envelope_id: str, *, within: float = 3.0) -> JSON:
        async def acked() -> JSON | None:
            return next((a for a in self.acks if a.get("envelope_id") == envelope_id), None)

        async with self._acked:
            await asyncio.wait_for(
                self._acked.wait_for(
                    lambda: any(a.get("envelope_id") == envelope_id for a in self.acks)
                ),
                within,
            )
        found = await acked()
        assert found is not None
        return found

    async def drop(self) -> None:
        """Close every connection, as Slack does when it refreshes them."""
        for ws in self._sockets:
            await ws.close()

    async def _link(self, request: web.Request) -> web.StreamResponse:
        # autoping off: pongs are ours to send, so that a stall can swallow them.
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": self.connected,
                    "connection_info": {"app_id": "A0QB0TAPP1"},
                    "debug_info": {"host": "fake-socket-mode", "approximate_connection_time": 3600},
                }
            )
        )
        async for msg in ws:
            if msg.type == WSMsgType.PING:
                if not self.stalled:
                    await ws.pong(msg.data)
            elif msg.type == WSMsgType.TEXT and not self.stalled:
                data = json.loads(msg.data)
                if "envelope_id" in data:
                    async with self._acked:
                        self.acks.append(data)
                        self._acked.notify_all()
        return ws
