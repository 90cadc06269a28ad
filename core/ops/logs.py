"""Log lines as text or as one JSON object each, naming the turn they belong to, never a secret.

The turn runner binds the turn it runs (`bind_turn`) in a context variable, so every line logged
while a turn runs, by threadbot or by a library, carries its platform, session id and event id.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TextIO

from pydantic import SecretStr

if TYPE_CHECKING:
    from core.settings import Settings
    from core.turn.types import Turn

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "[redacted]"
_MIN_SECRET_CHARS = 6  # shorter values would blank out ordinary words

_current_turn: ContextVar[Turn | None] = ContextVar("threadbot_turn", default=None)


def bind_turn(turn: Turn) -> Token[Turn | None]:
    """Name `turn` in every line logged from here on in this context (until `unbind`)."""
    return _current_turn.set(turn)


def unbind(token: Token[Turn | None]) -> None:
    _current_turn.reset(token)


def turn_fields() -> dict[str, str]:
    """The fields of the turn running in this context ({} outside a turn)."""
    turn = _current_turn.get()
    if turn is None:
        return {}
    fields = {"platform": turn.platform, "session_id": turn.session_id}
    if turn.event_key is not None:
        fields["event_id"] = turn.event_key
    return fields


def secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold (tokens, keys), longest first."""
    values = [
        value.get_secret_value()
        for value in (getattr(settings, name) for name in type(settings).model_fields)
        if isinstance(value, SecretStr)
    ]
    return sorted((v for v in values if len(v) >= _MIN_SECRET_CHARS), key=len, reverse=True)


class _Redacting(logging.Formatter):
    """Replaces every configured secret in the finished line: whatever a library logs (a URL
    with a token, a request dump), the secret never reaches the log."""

    def __init__(self, secrets: list[str], fmt: str | None = None) -> None:
        super().__init__(fmt)
        self._secrets = secrets

    def redact(self, line: str) -> str:
        for secret in self._secrets:
            line = line.replace(secret, REDACTED)
        return line

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


class TextFormatter(_Redacting):
    """Today's text lines, with the turn's session id appended when there is one."""

    def __init__(self, secrets: list[str], fmt: str = TEXT_FORMAT) -> None:
        super().__init__(secrets, fmt)

    def without_time_and_level(self) -> TextFormatter:
        """For a handler that shows both itself (rich's, above the console's prompt)."""
        return TextFormatter(self._secrets, "%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        session = turn_fields().get("session_id")
        return f"{line} [{session}]" if session else line


class JsonFormatter(_Redacting):
    """One JSON object a line: time, level, logger, message, and the turn's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **turn_fields(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # Each value before it is encoded: a secret holding a quote or a backslash is written
        # escaped, and would no longer be found in the finished line.
        redacted = {key: self.redact(value) for key, value in entry.items()}
        return json.dumps(redacted, ensure_ascii=False)


# Lines that are true and harmless for threadbot, and only worry someone reading the log:
# threadbot has no voice, the Slack client it gives bolt is its own (bolt also sees the token in
# the environment), and which CPU kernel faiss loads is nobody's business.
_NOISE = (
    "voice will NOT be supported",
    "As you gave `client` as well, `token` will be unused.",
)
_QUIET_LOGGERS = ("faiss.loader",)


class _Quiet(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(noise in message for noise in _NOISE)


def configure_logging(
    settings: Settings, *, level: int | str, stream: TextIO = sys.stderr
) -> logging.Handler:
    """Send every log line to `stream` in `LOG_FORMAT`; the one place logging is set up."""
    kind: Literal["text", "json"] = settings.log_format
    secrets = secret_values(settings)
    formatter = JsonFormatter(secrets) if kind == "json" else TextFormatter(secrets)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(_Quiet())
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # a library's warning is a log line too, in the same format
    return handler
