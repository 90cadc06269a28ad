"""How an answer is written: prompt and chat model, or retrieval only when no model is set."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Protocol

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from core.answer.prompt import Quoted, system_message
from core.errors import ModelFailed
from core.knowledge.retrieval import printable

if TYPE_CHECKING:
    from core.answer.attachments import FileText
    from core.knowledge.retrieval import Passage
    from core.settings import Settings

NOTHING_QUOTED = Quoted()
PASSAGE_CHARS = 1000  # an attached file's passages, as long as the documents' usually are
FILE_PASSAGES = 2  # an attached file's best passages shown before the documents' (no model)

log = logging.getLogger(__name__)

_SET_A_MODEL = (
    "Set `OPENAI_API_KEY`, or `OPENAI_BASE_URL` for a local OpenAI-compatible server such as "
    "Ollama, to get generated answers._"
)
RETRIEVAL_ONLY_NOTE = (
    "_No language model is configured, so these are the closest passages from the documents, "
    f"not a written answer. {_SET_A_MODEL}"
)
NOTHING_FOUND_NOTE = f"_No language model is configured: I can only show passages. {_SET_A_MODEL}"


class Answerer(Protocol):
    """Writes the text of one answer; must raise `ModelFailed` (not a client error) on failure.

    `cites_inline` says the text already names each passage, so no sources line is added;
    `reads_history` that the conversation's history (and a thread's) is given to a model, so
    leaving part of it out is worth saying.
    """

    cites_inline: bool
    reads_history: bool

    def stream(
        self,
        history: Sequence[BaseMessage],
        question: str,
        passages: Sequence[Passage],
        quoted: Quoted = NOTHING_QUOTED,
        instructions: str = "",
    ) -> AsyncIterator[str]: ...

    def remembered(self, answer: str, passages: Sequence[Passage]) -> str:
        """What the conversation keeps of an answer (what a model should see as history)."""


def sources_footer(passages: Sequence[Passage], files: Sequence[FileText] = ()) -> str:
    """The sources line shown after an answer: each attached file, then each document's file
    and heading (or page), once."""
    attached = [f"{f.name} (attached)" for f in files]
    citations = list(dict.fromkeys([*attached, *(_cited(p) for p in passages)]))
    return f"\n\n_Sources: {'; '.join(citations)}_" if citations else ""


def _cited(passage: Passage) -> str:
    """A document's citation; a website's page as a link to it (Markdown, which Slack and
    Discord show as a link), named by its heading."""
    chunk = passage.chunk
    if not chunk.source.startswith(("https://", "http://")):
        return chunk.citation
    label = printable(chunk.location or chunk.source).replace("[", "(").replace("]", ")")
    url = chunk.source.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
    return f"[{label}]({url})"


class ModelAnswerer:
    """A chat model at any OpenAI-compatible endpoint (OpenAI, Azure, Ollama, vLLM, LM Studio)."""

    cites_inline = False
    reads_history = True

    def remembered(self, answer: str, passages: Sequence[Passage]) -> str:
        return answer

    def __init__(self, settings: Settings) -> None:
        from langchain_openai import ChatOpenAI
        from openai import DefaultAsyncHttpxClient

        from core.answer.openai_client import ChunkValidatingClient

        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        # Local servers (Ollama, vLLM) take any key; the client insists on one.
        client = ChunkValidatingClient(
            api_key=key or "not-needed",
            base_url=settings.openai_base_url,
            timeout=settings.chat_timeout_s,
            max_retries=settings.chat_max_retries,
            # Given, so that the SDK does not wrap one whose __del__ closes it in a task on
            # whatever event loop runs then (a later one's, in tests: an error logged there).
            http_client=DefaultAsyncHttpxClient(),
        )
        self._model = ChatOpenAI(
            model=settings.chat_model,
            base_url=settings.openai_base_url,
            api_key=key or "not-needed",  # type: ignore[arg-type]
            root_async_client=client,
            async_client=client.chat.completions,
            temperature=settings.chat_temperature,
            timeout=settings.chat_timeout_s,
            max_retries=settings.chat_max_retries,
            streaming=True,
            # Its own per-chunk timeout waits for each chunk in a new task (asyncio.wait_for),
            # the costliest step of a streamed chunk here; `stream` times the silence instead.
            stream_chunk_timeout=None,
        )
        # Content silence (keep-alive comments don't count) longer than this fails the answer.
        self._silence_s = settings.chat_timeout_s

    async def stream(
        self,
        history: Sequence[BaseMessage],
        question: str,
        passages: Sequence[Passage],
        quoted: Quoted = NOTHING_QUOTED,
        instructions: str = "",
    ) -> AsyncIterator[str]:
        """`history` as it fits the prompt already (the pipeline trims it)."""
        import httpx
        import openai

        # Messages built directly: a prompt template would read braces in quoted text as its
        # own placeholders.
        messages = [
            SystemMessage(system_message(passages, quoted, instructions)),
            *history,
            HumanMessage(question),
        ]
        finished = False
        try:
            # The chat model itself, not `prompt | model`: a runnable sequence awaits each chunk
            # in a task of its own and keeps them all for its callbacks, work the bot does not
            # need; the prompt is filled in once.
            async with contextlib.aclosing(self._model.astream(messages)) as chunks:  # type: ignore[type-var]
                while True:
                    try:
                        async with asyncio.timeout(self._silence_s):
                            chunk = await anext(chunks)
                    except StopAsyncIteration:
                        break
                    finished = finished or bool(chunk.response_metadata.get("finish_reason"))
                    if isinstance(chunk.content, str) and chunk.content:
                        yield chunk.content
        except TimeoutError as exc:
            log.warning("chat model sent nothing for %.0fs", self._silence_s)
            raise ModelFailed(f"no text from the model for {self._silence_s:.0f}s") from exc
        except openai.RateLimitError as exc:
            raise ModelFailed(
                str(exc),
                user_message="The language model is rate limited right now. "
                "Please try again in a minute.",
            ) from exc
        except (openai.OpenAIError, httpx.HTTPError, ValueError) as exc:
            log.warning("chat model failed: %s", exc)
            raise ModelFailed(str(exc)) from exc
        if not finished:
            # A stream cut short by a proxy or a crashed server can end cleanly: without a
            # finish reason, the answer is not known to be whole.
            raise ModelFailed("the model's stream ended without a finish reason")


class RetrievalOnlyAnswerer:
    """With no model configured: the best passages themselves, honestly labelled as such."""

    cites_inline = True
    reads_history = False

    def remembered(self, answer: str, passages: Sequence[Passage]) -> str:
        """Not the passages themselves: a model configured later would get them as history, a
        dump of old search results. A line saying what was shown is enough."""
        if not passages:
            return "(Retrieval-only answer: nothing in the documents matched.)"
        citations = "; ".join(dict.fromkeys(p.chunk.citation for p in passages))
        return f"(Retrieval-only answer: showed the passages {citations}.)"

    async def stream(
        self,
        history: Sequence[BaseMessage],
        question: str,
        passages: Sequence[Passage],
        quoted: Quoted = NOTHING_QUOTED,
        instructions: str = "",
    ) -> AsyncIterator[str]:
        """The attached files' best passages for the question, then the documents'."""
        found = await asyncio.to_thread(_best_in_files, quoted.files, question)
        shown = [*found, *((p.chunk.citation, p.chunk.text) for p in passages)]
        blocks = [
            f"**[{n}] {citation}**\n\n{text}" for n, (citation, text) in enumerate(shown, start=1)
        ] or ["I found nothing about that in the documents."]
        if not history:  # what the answers are is said once per conversation, not every time
            blocks.append(RETRIEVAL_ONLY_NOTE if passages else NOTHING_FOUND_NOTE)
        for n, block in enumerate(blocks):
            yield block if n == 0 else f"\n\n{block}"


def _best_in_files(files: Sequence[FileText], question: str) -> list[tuple[str, str]]:
    """Each attached file's passages that share words with the question, best first (its first
    passage when none does: the asker attached it for a reason). Blocking: BM25 over them."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from core.knowledge.keywords import KeywordIndex

    splitter = RecursiveCharacterTextSplitter(chunk_size=PASSAGE_CHARS, chunk_overlap=0)
    found: list[tuple[str, str]] = []
    for file in files:
        parts = [
            (f"{file.name} (attached) › {s.location}" if s.location else f"{file.name} (attached)",
             text)
            for s in file.sections
            for text in splitter.split_text(s.text)
        ]  # fmt: skip
        if not parts:
            continue
        hits = KeywordIndex.build([text for _, text in parts]).search([question], FILE_PASSAGES)
        found += [parts[i] for i in [i for i, _ in hits[0]] or [0]]
    return found


def build_answerer(settings: Settings) -> Answerer:
    return ModelAnswerer(settings) if settings.generates_answers else RetrievalOnlyAnswerer()
