"""Slack's Socket Mode, emulated beside the fake Web API: what `threadbot slack` meets with an
app token, over a plain ws:// on loopback.

As Slack publishes it: `apps.connections.open` (app token only) hands out a single-use
`url`; the WebSocket there first says `hello`; events come as `events_api` envelopes, spread
over the app's open connections (at most 10; one more is told `disconnect`
`too_many_websockets`); the app acks each with `{"envelope_id": ...}`; an envelope not acked
in time is sent again (`retry_attempt`, `retry_reason`), on another connection when there is
one; `disconnect` asks a client to reconnect. Simplified: every retry waits `ack_timeout_s`
(Slack waits 3 s, then longer), and a retry keeps its envelope id.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

APP_ID = "A0FAKEAPP"
HOST = "fake-applink"
MAX_CONNECTIONS = 10  # Slack's limit of open Socket Mode connections per app
MAX_RETRIES = 3  # Slack gives up on an event after three retries
ACK_TIMEOUT_S = 3.0  # Slack's window to acknowledge an envelope


@dataclass
class Connection:
    """One client's WebSocket, numbered in the order connections were opened."""

    number: int
    ws: web.WebSocketResponse
    token: str  # the app token that asked for its URL
    sent: list[str] = field(default_factory=list)  # envelope ids, retries included
    acked: list[str] = field(default_factory=list)
    closed: bool = False


@dataclass
class Envelope:
    """One event as Slack tries to deliver it: where each attempt went, and the ack."""

    envelope_id: str
    payload: dict[str, Any]
    attempts: list[int] = field(default_factory=list)  # connection numbers, first try first
    acked_on: int | None = None


class SocketMode:
    """The Socket Mode side of `FakeSlack`; `changed` is notified on each connect, close and ack."""

    def __init__(self, changed: asyncio.Condition, *, ack_timeout_s: float = ACK_TIMEOUT_S):
        self.ack_timeout_s = ack_timeout_s
        self.connections: list[Connection] = []
        self.envelopes: dict[str, Envelope] = {}
        self._changed = changed
        self._tickets: dict[str, str] = {}  # single-use ticket: the app token it was issued to
        self._turn = itertools.count()  # round robin over the open connections
        self._timers: set[asyncio.Task[None]] = set()

    def url(self, base: str, token: str) -> str:
        """A new single-use WebSocket URL (what `apps.connections.open` answers)."""
        ticket = uuid.uuid4().hex
        self._tickets[ticket] = token
        return f"{base}link/?ticket={ticket}&app_id={APP_ID}"

    @property
    def open(self) -> list[Connection]:
        return [c for c in self.connections if not c.closed]

    def of(self, token: str) -> Connection:
        """The open connection of the app running with `token`."""
        return next(c for c in self.open if c.token == token)

    # -- what tests do ------------------------------------------------------------------------

    async def send_event(self, payload: dict[str, Any], *, to: int | None = None) -> str:
        """Send an Events API payload in a new envelope, on connection `to` or the next open one
        in turn; retried until acked. Returns the envelope id."""
        envelope = Envelope(envelope_id=str(uuid.uuid4()), payload=payload)
        self.envelopes[envelope.envelope_id] = envelope
        await self._attempt(envelope, self._pick(to))
        return envelope.envelope_id

    async def redeliver(self, envelope_id: str, *, to: int, reason: str = "timeout") -> None:
        """Send an envelope again on connection `to`, as Slack does when an ack was lost."""
        await self._attempt(self.envelopes[envelope_id], self.connections[to], reason=reason)

    async def disconnect(self, number: int, reason: str = "refresh_requested") -> None:
        """Ask the client on a connection to reconnect; the connection stays open meanwhile."""
        await self._send(self.connections[number], _disconnect(reason))

    async def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        await asyncio.gather(*self._timers, return_exceptions=True)
        for connection in self.open:
            await connection.ws.close()

    # -- the WebSocket ------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        token = self._tickets.pop(request.query.get("ticket", ""), None)
        if token is None:
            return web.Response(status=401, text="invalid ticket")
        ws = web.WebSocketResponse()  # answers the client's pings itself
        await ws.prepare(request)
        if len(self.open) >= MAX_CONNECTIONS:
            await ws.send_str(json.dumps(_disconnect("too_many_websockets")))
            await ws.close()
            return ws
        connection = Connection(number=len(self.connections), ws=ws, token=token)
        self.connections.append(connection)
        await self._notify()
        try:
            await ws.send_str(json.dumps(_hello(len(self.open))))
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await self._acked(connection, json.loads(message.data))
        finally:
            connection.closed = True
            await self._notify()
        return ws

    async def _acked(self, connection: Connection, message: dict[str, Any]) -> None:
        envelope = self.envelopes.get(str(message.get("envelope_id")))
        if envelope is None:
            return
        connection.acked.append(envelope.envelope_id)
        if envelope.acked_on is None:
            envelope.acked_on = connection.number
        await self._notify()

    # -- delivery -----------------------------------------------------------------------------

    def _pick(self, to: int | None, *, avoid: int | None = None) -> Connection:
        if to is not None:
            return self.connections[to]
        candidates = self.open
        if not candidates:
            raise RuntimeError("no Socket Mode connection is open")
        others = [c for c in candidates if c.number != avoid] or candidates
        return others[next(self._turn) % len(others)]

    async def _attempt(
        self, envelope: Envelope, connection: Connection, *, reason: str | None = None
    ) -> None:
        message: dict[str, Any] = {
            "envelope_id": envelope.envelope_id,
            "type": "events_api",
            "accepts_response_payload": False,
            "payload": envelope.payload,
        }
        if envelope.attempts:
            message |= {"retry_attempt": len(envelope.attempts), "retry_reason": reason}
        envelope.attempts.append(connection.number)
        connection.sent.append(envelope.envelope_id)
        await self._send(connection, message)
        timer = asyncio.create_task(self._retry_unless_acked(envelope, len(envelope.attempts)))
        self._timers.add(timer)
        timer.add_done_callback(self._timers.discard)

    async def _retry_unless_acked(self, envelope: Envelope, attempts: int) -> None:
        await asyncio.sleep(self.ack_timeout_s)
        while envelope.acked_on is None and len(envelope.attempts) == attempts:
            if len(envelope.attempts) > MAX_RETRIES:
                return
            if self.open:
                connection = self._pick(None, avoid=envelope.attempts[-1])
                await self._attempt(envelope, connection, reason="timeout")
                return
            await asyncio.sleep(self.ack_timeout_s)  # nobody connected: try again later

    async def _send(self, connection: Connection, message: dict[str, Any]) -> None:
        if connection.closed:
            return  # lost on a dead connection, as on Slack: the ack timeout covers it
        try:
            await connection.ws.send_str(json.dumps(message))
        except ConnectionError:
            connection.closed = True

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


def _hello(open_connections: int) -> dict[str, Any]:
    return {
        "type": "hello",
        "num_connections": open_connections,
        "debug_info": {"host": HOST, "build_number": 1, "approximate_connection_time": 18060},
        "connection_info": {"app_id": APP_ID},
    }


def _disconnect(reason: str) -> dict[str, Any]:
    return {"type": "disconnect", "reason": reason, "debug_info": {"host": HOST}}
