"""The answer flow: load the conversation, retrieve, stream the model, save the whole turn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from core.answer.answerers import build_answerer, sources_footer
from core.answer.asked import NOTHING_ASKED, Asked, OnStep, Step
from core.answer.context import ContextReader, Thread
from core.answer.followups import search_query
from core.answer.probe import AnswerProbe
from core.answer.prompt import Quoted, fit_history, saved_thread, thread_in
from core.errors import HistoryUnavailable, NotAllowed, QuestionRejected, ThreadbotError
from core.feedback.records import Answered, AnswerRecord, Records, used
from core.feedback.votes import Feedback
from core.policy.audience import Where, bases_for, most_precise
from core.policy.config import PolicyFile
from core.settings import DEFAULT_BASE
from core.store.lease import Lease
from core.store.redis_client import connect, is_cluster
from core.store.store import Conversation, Place, Store

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from core.answer.answerers import Answerer
    from core.answer.attachments import FileText
    from core.answer.probe import PipelineMetrics
    from core.knowledge.index_follower import IndexFollower
    from core.knowledge.library import Library
    from core.knowledge.retrieval import Passage, Retriever
    from core.settings import Settings
    from core.store.redis_server import EmbeddedRedis

log = logging.getLogger(__name__)


async def _unseen(step: Step) -> None:
    """Steps nobody shows."""


EMPTY_QUESTION = "Ask me a question about the team's documents, and I'll answer here."
FILES_ONLY_QUESTION = "What is in the attached file(s)?"  # files sent without a word
LEFT_OUT_THREAD = "\n\n_Older messages of this thread were left out of what I read._"
LEFT_OUT_CONVERSATION = "\n\n_Older messages of this conversation were left out of what I read._"
TOLD_LEFT_OUT = "told_left_out"  # on every answer saved once the note was shown
UNCOVERED = "uncovered"  # on an answer saved when nothing the bot may read matched its question


def _place_of(where: Where | None) -> tuple[str, str, str]:
    where = where or Where("console")
    return where.platform, where.workspace, where.channel


class Pipeline:
    """Answers for session ids, on top of the `Store` (history, locks, resets, dedupe).

    Build it with `async with await Pipeline.create(settings) as pipeline:`; tests and
    benchmarks pass their own parts.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        retriever: Retriever,
        answerer: Answerer,
        *,
        embedded: EmbeddedRedis | None = None,
        follower: IndexFollower | None = None,
        probe: AnswerProbe | PipelineMetrics | None = None,
        policy: PolicyFile | None = None,
        library: Library | None = None,
    ) -> None:
        self._settings = settings
        self.store = store
        self.records = Records(store.redis, settings)  # what was asked, and the votes
        self._retriever = retriever
        self._answerer = answerer
        self._embedded = embedded
        self._follower = follower  # keeps the retriever on the index published in Redis
        # With a configuration file: the bases each place may search (`core.policy`).
        self._policy = policy
        # The adapters take each message by the same file (an empty one without a file).
        self.policy = policy if policy is not None else PolicyFile(None)
        self._library = library
        self._answerers: dict[str, Answerer] = {}  # by chat model, for places that name one
        self._probe = probe if probe is not None else AnswerProbe()  # timings, for metrics
        self.feedback = Feedback(self.records, settings, self._probe)
        # One process streams only so many answers well: past that, all of them slow down and
        # their leases lapse. The rest wait their turn, each holding its conversation.
        self._answering = asyncio.Semaphore(settings.max_answers_at_once)
        self._context = ContextReader(settings)
        self.waiting_for_slot = 0  # answers holding their conversation, waiting for a slot

    @classmethod
    async def create(
        cls,
        settings: Settings,
        *,
        join_running: bool = False,
        metrics: PipelineMetrics | None = None,
    ) -> Pipeline:
        """`join_running`: a short command (`conversations`, the doctor) uses the embedded server
        another threadbot runs on this data folder rather than being refused. `metrics` is told
        the answers' timings (its probe) and every Redis command (its observer)."""
        from core.knowledge.embeddings import build_embeddings
        from core.knowledge.index_follower import IndexFollower
        from core.knowledge.library import Library
        from core.knowledge.retrieval import Retriever
        from core.store.redis_server import EmbeddedRedis

        embedded = None
        url = settings.redis_url
        if url is None:
            embedded = EmbeddedRedis(settings.data_dir, join=join_running)
            url = await asyncio.to_thread(embedded.start)
        redis = connect(settings, url, observer=metrics)
        embeddings, name = await asyncio.to_thread(build_embeddings, settings)
        retriever = Retriever(
            settings.index_dir,
            embeddings,
            name,
            k=settings.retrieval_k,
            min_score=settings.retrieval_min_score,
            mode=settings.retrieval_mode,
        )
        follower = None
        if settings.redis_url is not None:  # a shared server: serve the published index
            follower = IndexFollower(redis, settings, retriever)
            await follower.sync()
        await asyncio.to_thread(retriever.refresh)
        if follower is not None:
            follower.start()
        policy = library = None
        if settings.threadbot_config is not None:
            policy = PolicyFile(settings.threadbot_config)  # raises ConfigInvalid, with the line
            fallback = settings.knowledge_base or DEFAULT_BASE
            library = Library(
                settings, embeddings, name, redis=redis if follower is not None else None,
                opened={fallback: retriever},
            )  # fmt: skip
        store = Store(redis, settings)
        if not is_cluster(url):
            try:
                await store.migrate()
            except HistoryUnavailable as exc:  # told again, plainly, at the first question
                log.warning("could not check the stored conversations' key layout: %s", exc)
        return cls(
            settings, store, retriever, build_answerer(settings), embedded=embedded,
            follower=follower, probe=metrics, policy=policy, library=library,
        )  # fmt: skip

    async def __aenter__(self) -> Pipeline:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def embeddings(self) -> Embeddings:
        """The embedding model this pipeline searches with, loaded once."""
        return self._retriever.embeddings

    @property
    def documents(self) -> int:
        """How many passages the knowledge base holds (0: nothing ingested)."""
        return self._retriever.size

    async def aclose(self) -> None:
        if self._follower is not None:
            await self._follower.aclose()
        if self._library is not None:
            await self._library.aclose()
        await self.store.aclose()
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.stop)

    async def answer(
        self,
        session_id: str,
        question: str,
        *,
        lease: Lease | None = None,
        place: Place | ThreadbotError | None = None,
        user: str = "",
        asked: Asked = NOTHING_ASKED,
        on_step: OnStep | None = None,
        where: Where | None = None,
        answered: Answered | None = None,
    ) -> AsyncGenerator[str, None]:
        """Stream the answer to `question` in the conversation `session_id`.

        The human and AI messages are saved together once the answer is complete; an answer
        that fails or is cancelled midway (the model errs, the user deletes the message) saves
        nothing, so the history never holds half a turn. The conversation is held with `lease`
        (the turn's, which may already hold its event), or a lease of its own, in the `place`
        the turn took when it arrived (see `Store.conversation`). `user`, the
        asker as `platform:id`, is noted with the session so their conversations can be found.

        `asked` gives the thread, read once when the conversation has no history yet (and kept
        with the question saved), and the files, read for this answer only. `on_step` hears
        each step before the first text, for platforms that show them. `where` it was asked
        picks the knowledge bases searched, when a configuration file maps them
        (`core.policy.audience`, before retrieval: a base not allowed there is never searched).
        With `answered`, the answer saved is also recorded under its id, with the passages it
        used (`core.feedback.records`: the report, and the votes on it), and `answered` says so;
        it also holds the answer's text and those passages, for a caller that shows the sources
        apart from the text.
        """
        # Lone surrogates (undecodable terminal input, JSON "\ud800") would break the tokenizer.
        question = question.encode("utf-8", "replace").decode("utf-8").strip()
        if not question and not asked.files:
            yield EMPTY_QUESTION
            return
        limit = self._settings.max_question_chars
        if len(question) > limit:
            raise QuestionRejected(
                f"{len(question)} chars",
                user_message=f"That message is too long for me ({len(question):,} characters; "
                f"the limit is {limit:,}). Please shorten it or ask about one part at a time.",
            )
        step = on_step if on_step is not None else _unseen
        held = lease if lease is not None else self.store.lease()
        try:
            async with self.store.conversation(session_id, held, place) as placed, self._slot():
                held.check()  # still ours after waiting for a free slot?
                messages = await self.store.history(session_id).aget_messages()
                resets_before = placed.resets
                recent, left_out = fit_history(messages, self._settings.history_max_tokens)
                thread, fresh = Thread(thread_in(recent)), False
                # Not after a reset (a counter kept for a day): what was forgotten stays so.
                forgotten = any(counter is not None for counter in placed.resets)
                if not messages and not forgotten and asked.thread and self._context.reads_threads:
                    await step(Step("thread", "Reading the thread"))
                    thread, fresh = await self._context.thread(session_id, asked.thread), True
                    read = f"{len(thread.messages)} earlier message(s)"
                    await step(Step("thread", "Reading the thread", "complete", read))
                files, refused = await self._read_files(asked, step)
                if refused:
                    yield f"_Not read: {'; '.join(refused)}._\n\n"
                question = question or FILES_ONLY_QUESTION
                await step(Step("search", "Searching the docs"))
                started = asyncio.get_running_loop().time()
                earlier = messages or [
                    HumanMessage(s.text) for s in thread.messages if not s.by_bot
                ]
                passages, bases = await self._search(search_query(earlier, question), where)
                self._probe.retrieved(asyncio.get_running_loop().time() - started, len(passages))
                uncovered = not passages and not files  # the model is told so (`prompt`)
                found = "; ".join(dict.fromkeys(p.chunk.citation for p in passages))
                await step(Step("search", "Searching the docs", "complete", found or "no match"))
                parts: list[str] = []
                started = asyncio.get_running_loop().time()
                quoted = Quoted(thread.messages, files)
                answerer, instructions = await self._for_place(where)
                stream = answerer.stream(recent, question, passages, quoted, instructions)
                async with contextlib.aclosing(stream):  # type: ignore[type-var]
                    async for chunk in stream:
                        self._probe.streamed(
                            asyncio.get_running_loop().time() - started, first=not parts
                        )
                        held.check()
                        parts.append(chunk)
                        yield chunk
                held.check()
                told_before = any(m.additional_kwargs.get(TOLD_LEFT_OUT) for m in messages)
                tell = self._answerer.reads_history and (left_out or thread.cut) and not told_before
                marks = {TOLD_LEFT_OUT: True} if tell or told_before else {}
                if uncovered:
                    marks[UNCOVERED] = True  # what the documents miss, for the operator
                answer = AIMessage(
                    self._answerer.remembered("".join(parts), passages), additional_kwargs=marks
                )
                kept = saved_thread(thread.messages) if fresh else {}
                turn = [HumanMessage(question, additional_kwargs=kept), answer]
                await self.store.save_turn(session_id, turn, resets_before, user=user)
                self._probe.answered(covered=not uncovered)
                if answered is not None:
                    answered.text, answered.passages = "".join(parts), tuple(passages)
                    record = AnswerRecord(
                        answered.id, time.time(), question, "".join(parts), not uncovered,
                        used(passages), tuple(bases), *_place_of(where), session_id, user,
                    )  # fmt: skip
                    await self._keep(record, answered)
        finally:
            if lease is None:
                await held.aclose()
        if tell:  # before the sources, which a platform may show apart at the very end
            yield LEFT_OUT_THREAD if thread.cut else LEFT_OUT_CONVERSATION
        if not self._answerer.cites_inline and (passages or files):
            yield sources_footer(passages, files)

    async def _read_files(self, asked: Asked, step: OnStep) -> tuple[list[FileText], list[str]]:
        if not asked.files:
            return [], []
        await step(Step("files", "Reading the attached files"))
        files, refused = await self._context.files(list(asked.files))
        read = "; ".join(f.name for f in files) or "none could be read"
        await step(Step("files", "Reading the attached files", "complete", read))
        return files, refused

    async def _for_place(self, where: Where | None) -> tuple[Answerer, str]:
        """The answerer (the place's chat model) and the operator's instructions for `where`."""
        if self._policy is None or not self._settings.generates_answers:
            return self._answerer, ""
        policies = await self._policy.current()
        place = where or Where("console")
        model, _ = most_precise(policies, place, "chat_model")
        prompt, _ = most_precise(policies, place, "prompt")
        if model is None or model == self._settings.chat_model:
            return self._answerer, prompt or ""
        if model not in self._answerers:
            self._answerers[model] = build_answerer(
                self._settings.model_copy(update={"chat_model": model})
            )
        return self._answerers[model], prompt or ""

    async def bases_at(self, where: Where) -> list[str]:
        """The knowledge bases a question asked at `where` may search, as the configuration
        file says now (`core.policy.audience`); without a file, the one base this process
        answers from (`KNOWLEDGE_BASE`, or the default)."""
        fallback = self._settings.knowledge_base or DEFAULT_BASE
        if self._policy is None or self._library is None:
            return [fallback]
        return bases_for(await self._policy.current(), where, fallback)

    async def search(
        self, query: str, where: Where, *, base: str | None = None, k: int | None = None
    ) -> tuple[list[Passage], list[str]]:
        """The passages a question asked at `where` would be given, best first, and the bases
        searched: every base `where` may search, or only `base` (which must be one of them:
        else `NotAllowed`, and nothing is searched). `k` passages at most (`RETRIEVAL_K`)."""
        bases = await self.bases_at(where)
        if base is not None:
            if base not in bases:
                offered = ", ".join(bases) or "none"
                raise NotAllowed(
                    f"knowledge base {base!r} at {where}",
                    user_message=f"The knowledge base {base!r} is not available here "
                    f"(available: {offered}).",
                )
            bases = [base]
        query = query.encode("utf-8", "replace").decode("utf-8").strip()
        return await self._search_in(query, bases, k), bases

    async def _search(self, query: str, where: Where | None) -> tuple[list[Passage], list[str]]:
        """The passages found for `query` where it was asked, and the bases searched."""
        bases = await self.bases_at(where or Where("console"))
        return await self._search_in(query, bases), bases

    async def _search_in(self, query: str, bases: list[str], k: int | None = None) -> list[Passage]:
        if self._library is None:  # no configuration file: the one base, `bases_at` says
            found = await self._retriever.search(query, k)
            return [replace(p, base=bases[0]) for p in found]
        return await self._library.search(query, bases, k)

    async def _keep(self, record: AnswerRecord, answered: Answered) -> None:
        """The answer's record: without it the answer stands, unrated (the store said why)."""
        try:
            await self.records.keep(record)
        except ThreadbotError as exc:
            log.warning("answer %s is not recorded: %s", record.id, exc)
            return
        answered.saved, answered.covered = True, record.covered

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """One of the `MAX_ANSWERS_AT_ONCE` answers this process streams at once."""
        self.waiting_for_slot += 1
        try:
            await self._answering.acquire()
        finally:
            self.waiting_for_slot -= 1
        try:
            yield
        finally:
            self._answering.release()

    # The store's conversation-level operations, for the turn runner and the adapters.

    async def reset(self, session_id: str) -> bool:
        return await self.store.reset(session_id)

    async def reset_many(self, session_prefix: str) -> int:
        return await self.store.reset_many(session_prefix)

    async def has_history(self, session_id: str) -> bool:
        return await self.store.has_history(session_id)

    async def messages(self, session_id: str) -> list[BaseMessage]:
        """What the conversation holds, oldest first (the console's start line, the operator's
        `conversations show`)."""
        return await self.store.history(session_id).aget_messages()

    async def ping(self) -> None:
        """Raises `HistoryUnavailable` unless the store answers (readiness, the doctor)."""
        await self.store.ping()

    # The operator's queries (`threadbot conversations`).

    async def conversations(self) -> list[Conversation]:
        return await self.store.conversations()

    async def forget_user(self, user: str) -> list[str]:
        return await self.store.forget_user(user)
