"""The MCP server over streamable HTTP: where it listens (loopback unless told otherwise), the
bearer token every request must carry, and the uvicorn server that serves it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import math
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import uvicorn

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
PATH = "/mcp"  # the endpoint a client is given: http://HOST:PORT/mcp
MIN_TOKEN_CHARS = 16  # shorter is guessable, and the log would not redact it (core.ops.logs)
UNAUTHORIZED = json.dumps({"error": "unauthorized"}).encode()


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        """Reachable from this machine only: 127.0.0.0/8, ::1 or `localhost`."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:  # a name: it may resolve anywhere
            return False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{PATH}"


def address(value: str) -> Address:
    """`--http`'s value: `PORT` (on loopback), `HOST:PORT`, or `[IPv6]:PORT`."""
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = LOOPBACK, value
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not PORT or HOST:PORT (e.g. 8765, 127.0.0.1:8765, [::1]:8765)"
        )
    return Address(host, int(port))


def token_problem(token: str | None) -> str | None:
    """What is wrong with MCP_TOKEN for serving HTTP, or None."""
    if token is None:
        return (
            "MCP_TOKEN is not set: every HTTP request must carry it as a bearer token "
            "(make one with `openssl rand -hex 32`)"
        )
    if len(token) < MIN_TOKEN_CHARS:
        return f"MCP_TOKEN is shorter than {MIN_TOKEN_CHARS} characters (`openssl rand -hex 32`)"
    return None


def address_problem(where: Address, *, public: bool) -> str | None:
    """Why the server may not listen at `where`, or None: off loopback only with --public."""
    if where.loopback or public:
        return None
    return (
        f"--http {where.host}:{where.port} is not a loopback address, so other machines could "
        "reach the team's documents; add --public to listen there anyway (and put TLS in "
        "front: the token travels in every request)"
    )


class BearerToken:
    """ASGI middleware: a request whose `Authorization` is not `Bearer <MCP_TOKEN>` gets 401
    and a one-word error, before anything of the MCP server runs (no tool list, no session).
    The token is compared in constant time."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self._carries_token(scope):
            await self._app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(UNAUTHORIZED)).encode()),
                    (b"www-authenticate", b'Bearer realm="threadbot"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": UNAUTHORIZED})

    def _carries_token(self, scope: Scope) -> bool:
        given = [v for k, v in scope.get("headers", ()) if k.lower() == b"authorization"]
        if len(given) != 1:
            return False
        scheme, _, token = given[0].partition(b" ")
        # Both compared whatever the first says: the time taken tells nothing of the token.
        right_scheme = scheme.lower() == b"bearer"
        return hmac.compare_digest(token.strip(), self._token) and right_scheme


def bind(where: Address) -> socket.socket:
    """The listening socket (port 0: any free one); OSError when it cannot be had."""
    family = socket.AF_INET6 if ":" in where.host else socket.AF_INET
    return socket.create_server((where.host, where.port), family=family)


async def serve(app: ASGIApp, listening: socket.socket, *, grace_s: float) -> None:
    """Serve `app` on `listening` until cancelled, then let requests in flight finish within
    `grace_s` (the signals are `bots.lifecycle.until_stopped`'s, not uvicorn's)."""
    config = uvicorn.Config(
        app, log_config=None, lifespan="on", server_header=False,
        timeout_graceful_shutdown=max(1, math.ceil(grace_s)),
    )  # fmt: skip
    server = _Server(config)
    serving = asyncio.ensure_future(server.serve(sockets=[listening]))
    try:
        await asyncio.shield(serving)
    except asyncio.CancelledError:
        server.should_exit = True
        await serving
        raise


def bound(listening: socket.socket) -> Address:
    host, port = listening.getsockname()[:2]
    return Address(host, port)


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handlers: stopping is the command's to decide."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
