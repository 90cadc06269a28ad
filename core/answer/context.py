"""Gathering what came with a question, within its bounds: the thread once, the files each time.

Neither may stop an answer: a thread that cannot be read (rate limited, no permission) is
answered without, said once in the log per conversation; a file that cannot be read is named in
the answer with why.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.answer.asked import Said, ThreadReader
from core.answer.attachments import FileLimits, FileText, read_files
from core.answer.prompt import fit_thread

if TYPE_CHECKING:
    from core.answer.asked import Attachment
    from core.settings import Settings

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 10.0  # a thread read slower than this is not worth the wait
_WARNED_AT_MOST = 10_000  # conversations remembered as warned about, newest kept


@dataclass
class Thread:
    """The thread's earlier messages as the model gets them; `cut` when some were left out."""

    messages: list[Said] = field(default_factory=list)
    cut: bool = False


class ContextReader:
    """Reads a question's thread and files within the settings' bounds; never raises."""

    def __init__(self, settings: Settings) -> None:
        self._max_messages = settings.thread_context_messages
        self._max_tokens = settings.thread_context_tokens
        self._limits = FileLimits(
            max_files=settings.files_max,
            max_bytes=settings.file_max_bytes,
            max_chars=settings.file_max_chars,
        )
        self._warned: OrderedDict[str, None] = OrderedDict()

    @property
    def reads_threads(self) -> bool:
        return self._max_messages > 0

    async def thread(self, session_id: str, reader: ThreadReader) -> Thread:
        try:
            earlier = await asyncio.wait_for(reader(self._max_messages), READ_TIMEOUT_S)
        except Exception as exc:  # the platform client's errors: a 429, a missing scope
            self._warn_once(session_id, exc)
            return Thread()
        said = [m for m in earlier.messages if m.text.strip()]
        over = len(said) > self._max_messages
        if over:  # the first message says what the thread is about: kept with the newest
            said = [said[0], *said[len(said) - self._max_messages + 1 :]]
        kept, cut = fit_thread(said, self._max_tokens)
        return Thread(kept, cut or earlier.more or over)

    async def files(self, files: list[Attachment]) -> tuple[list[FileText], list[str]]:
        found = await read_files(files, self._limits)
        return found.texts, found.refused

    def _warn_once(self, session_id: str, exc: Exception) -> None:
        if session_id in self._warned:
            return
        self._warned[session_id] = None
        if len(self._warned) > _WARNED_AT_MOST:
            self._warned.popitem(last=False)
        log.warning(
            "answering in %s without the thread's earlier messages: could not read them (%s)",
            session_id,
            exc or type(exc).__name__,
        )
