"""A file attached to a Slack question, downloaded with the bot token from Slack's file host only.

The token is a workspace credential: it goes to the host that serves the workspace's files
(`https://files.slack.com`, or the origin of `SLACK_API_URL` where tests run their own Slack:
scheme, host and port alike) and nowhere else, whatever URL a payload names, and a redirect is
followed with it only to such an origin.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from core import FileRefused

Origin = tuple[str, str, int]  # scheme, host, port: the token goes to these exactly
SLACK_FILE_HOST: Origin = ("https", "files.slack.com", 443)
REDIRECTS_AT_MOST = 3
TIMEOUT_S = 30
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def origin(url: str) -> Origin | None:
    parts = urlsplit(url)
    if not parts.hostname or parts.scheme not in ("http", "https"):
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a port that is not a number
        return None
    return parts.scheme, parts.hostname.lower(), port


def file_hosts(api_url: str) -> frozenset[Origin]:
    """Where the bot token may go: Slack's file host, and SLACK_API_URL's own origin when it is
    not Slack's (a local Slack in tests serves its files itself)."""
    api = origin(api_url)
    return frozenset({SLACK_FILE_HOST} | ({api} if api and api[1] != "slack.com" else set()))


class SlackFile:
    """One entry of an event's `files`, read on demand (an `Attachment` for the core)."""

    def __init__(self, file: dict[str, Any], token: str, hosts: frozenset[Origin]) -> None:
        self._file = file
        self._token = token
        self._hosts = hosts

    @property
    def name(self) -> str:
        return str(self._file.get("name") or self._file.get("title") or "")

    @property
    def size(self) -> int | None:
        size = self._file.get("size")
        return int(size) if isinstance(size, int | float) else None

    @property
    def mimetype(self) -> str:
        return str(self._file.get("mimetype") or "")

    async def read(self, limit: int) -> bytes:
        if (
            self._file.get("mode") == "tombstone"
            or self._file.get("file_access") == "check_file_info"
        ):
            raise FileRefused("not shared with the bot")  # deleted, or Slack Connect
        url = str(self._file.get("url_private_download") or self._file.get("url_private") or "")
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for _ in range(REDIRECTS_AT_MOST + 1):
                if origin(url) not in self._hosts:
                    raise FileRefused("its address is not Slack's file host")
                headers = {"Authorization": f"Bearer {self._token}"}
                try:
                    async with session.get(url, headers=headers, allow_redirects=False) as got:
                        if got.status in _REDIRECTS:
                            url = urljoin(url, got.headers.get("Location", ""))
                            continue
                        if got.status != 200:
                            raise FileRefused(f"Slack answered {got.status} to its download")
                        if got.content_type == "text/html" and "html" not in self.mimetype:
                            # Slack's sign-in page: the token may not read files
                            raise FileRefused("Slack did not let the bot download it (files:read)")
                        data = bytearray()
                        async for block in got.content.iter_chunked(64 * 1024):
                            data += block
                            if len(data) > limit:  # enough to know it is too large
                                break
                        return bytes(data[: limit + 1])
                except (aiohttp.ClientError, TimeoutError) as exc:
                    raise FileRefused("could not be downloaded") from exc
        raise FileRefused("Slack redirected its download too many times")
