"""Streamable HTTP's rules, alone: the address `--http` takes, what counts as loopback, the
token MCP_TOKEN must be, and the bearer check in front of the MCP server."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from bots.mcp.http import Address, BearerToken, address, address_problem, token_problem

TOKEN = "a-token-of-thirty-two-characters"


@pytest.mark.parametrize(
    ("value", "parsed", "loopback"),
    [
        ("8765", Address("127.0.0.1", 8765), True),
        ("0", Address("127.0.0.1", 0), True),
        ("127.0.0.2:80", Address("127.0.0.2", 80), True),
        ("localhost:8765", Address("localhost", 8765), True),
        ("[::1]:8765", Address("::1", 8765), True),
        ("0.0.0.0:8765", Address("0.0.0.0", 8765), False),
        ("[::]:8765", Address("::", 8765), False),
        ("192.0.2.1:8765", Address("192.0.2.1", 8765), False),
        ("docs.example.com:8765", Address("docs.example.com", 8765), False),  # may be anywhere
    ],
)
def test_an_address_is_a_port_or_a_host_and_a_port(
    value: str, parsed: Address, loopback: bool
) -> None:
    assert address(value) == parsed
    assert parsed.loopback is loopback
    assert (address_problem(parsed, public=False) is None) is loopback
    assert address_problem(parsed, public=True) is None


@pytest.mark.parametrize("value", ["", "host", "host:", ":80", "70000", "127.0.0.1:http"])
def test_anything_else_is_refused_with_the_forms_it_takes(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="is not PORT or HOST:PORT"):
        address(value)


def test_the_url_a_client_is_given() -> None:
    assert Address("127.0.0.1", 8765).url == "http://127.0.0.1:8765/mcp"
    assert Address("::1", 8765).url == "http://[::1]:8765/mcp"


def test_the_token_must_be_set_and_long() -> None:
    assert "MCP_TOKEN is not set" in str(token_problem(None))
    assert "shorter than 16 characters" in str(token_problem("x" * 15))
    assert token_problem("x" * 16) is None


class Inner:
    """The app behind the guard: records what reaches it."""

    def __init__(self) -> None:
        self.reached: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.reached.append(scope["type"])
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"tools"})


async def through(headers: list[tuple[bytes, bytes]], kind: str = "http") -> tuple[Inner, list]:
    inner, sent = Inner(), []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await BearerToken(inner, TOKEN)({"type": kind, "headers": headers}, receive, send)  # type: ignore[arg-type]
    return inner, sent


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"authorization", b"Bearer wrong")],
        [(b"authorization", b"Bearer " + TOKEN.encode() + b"x")],
        [(b"authorization", b"Bearer " + TOKEN[:-1].encode())],
        [(b"authorization", b"Basic " + TOKEN.encode())],
        [(b"authorization", TOKEN.encode())],
        [(b"authorization", b"Bearer " + TOKEN.encode()), (b"authorization", b"Bearer x")],
        [(b"x-token", TOKEN.encode())],
    ],
)
async def test_without_the_token_a_request_gets_401_and_a_word(headers: list) -> None:
    inner, sent = await through(headers)
    assert inner.reached == []  # nothing of the MCP server ran
    start, body = sent
    assert start["status"] == 401
    assert dict(start["headers"])[b"www-authenticate"] == b'Bearer realm="threadbot"'
    assert json.loads(body["body"]) == {"error": "unauthorized"}


@pytest.mark.parametrize("scheme", [b"Bearer", b"bearer", b"BEARER"])
async def test_with_the_token_the_request_reaches_the_server(scheme: bytes) -> None:
    inner, sent = await through([(b"authorization", scheme + b" " + TOKEN.encode())])
    assert inner.reached == ["http"] and sent[0]["status"] == 200


async def test_the_lifespan_passes_and_a_websocket_without_the_token_is_closed() -> None:
    inner, _ = await through([], kind="lifespan")
    assert inner.reached == ["lifespan"]
    inner, sent = await through([], kind="websocket")
    assert inner.reached == [] and sent == [{"type": "websocket.close", "code": 1008}]
