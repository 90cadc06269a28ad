"""Slack adapter: answers mentions, thread replies and DMs, streaming each answer into a thread."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.app.async_server import AsyncSlackAppServer
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bots.lifecycle import ExitCode, cannot_start, until_stopped
from bots.slack import threads
from bots.slack.feedback import FeedbackBlocks, SlackFeedback
from bots.slack.files import SlackFile, file_hosts
from bots.slack.setup import make_client, missing_settings, rejected
from bots.slack.sink import (
    SlackSink,
    SlackStreamSink,
    SlashResponse,
    WorkingStatus,
    loading_messages,
)
from bots.slack.translator import SlackPlace, place_words, turn_from_slack
from core import (
    AccessRules,
    Asked,
    Earlier,
    Health,
    Metrics,
    NotAllowed,
    Pacer,
    Pipeline,
    PolicyFile,
    ReplyModes,
    Settings,
    ThreadbotError,
    Turn,
    TurnRunner,
    access_for,
    sessions,
)

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
RESET_SHORTCUT = "reset_conversation"
SLACK_ACK_S = 2.0  # work done before an ack must fit Slack's 3 s window
WEB_API_TIMEOUT_S = 30  # slack_sdk's own default, kept when it is given a session
ThreadRead = Callable[[], Awaitable[tuple[list[dict[str, Any]], bool]]]
GROUPS_TTL_S = 300.0  # how long a user group's members are trusted before asking again
GROUPS_RETRY_S = 60.0  # how long after a failed read of a user group it is asked again


@web.middleware
async def _malformed_is_400(request: web.Request, handler: Any) -> web.StreamResponse:
    """A request bolt cannot read (a non-numeric timestamp, a body or `payload` that is not
    JSON) is the sender's error: 400, not a 500 with a traceback."""
    try:
        # bolt would turn a bad timestamp into a 500 while checking the signature
        int(request.headers.get("X-Slack-Request-Timestamp", "0"))
        response: web.StreamResponse = await handler(request)
    except ValueError as exc:
        log.info("bad request to %s: %s", request.path, exc)
        return web.Response(status=400, text="bad request")
    return response


class SlackBot:
    """The bolt app; every event it takes becomes a turn for the core's `TurnRunner`.

    `async with` it while it serves: the configuration file is followed meanwhile.
    """

    def __init__(
        self,
        settings: Settings,
        runner: TurnRunner,
        client: AsyncWebClient,
        policy: PolicyFile | None = None,
    ) -> None:
        self.settings = settings
        self.runner = runner
        self.client = client
        self.pacer = Pacer(settings.slack_post_interval_ms / 1000)
        self.status = WorkingStatus(client)
        # The settings' modes and rules; threadbot.toml's, place by place, take precedence.
        self.modes = ReplyModes(settings.slack_reply_modes)
        self.rules = AccessRules.for_slack(settings)
        # Its own reading of the file (the pipeline's, private to it, picks bases and models),
        # followed while the bot is entered; both are the file within RELOAD_CHECK_S.
        self.policy = policy if policy is not None else runner.pipeline.policy
        self._watching: asyncio.Task[None] | None = None
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}  # group -> (until, members)
        self._file_hosts = file_hosts(settings.slack_api_url)
        secret = settings.slack_signing_secret
        self.app = AsyncApp(
            # Tokenless: each request's client gets the token from `_authorize`.
            client=AsyncWebClient(
                base_url=client.base_url,
                session=client.session,
                retry_handlers=client.retry_handlers,
            ),
            authorize=lambda: self._authorize(),  # bolt passes arguments by parameter name
            signing_secret=secret.get_secret_value() if secret is not None else "",
            # Listeners only decide and submit, so running them before the response is sent
            # keeps the ack fast and makes the submitted turn the only thing that outlives it.
            process_before_response=True,
            logger=log,
        )
        self.app.event("app_mention")(self._on_event)
        self.app.event("message")(self._on_event)
        self.app.command("/reset")(self._on_reset_command)
        self.app.shortcut(RESET_SHORTCUT)(self._on_reset_shortcut)
        self.buttons = FeedbackBlocks() if settings.feedback else None
        self.feedback = SlackFeedback(runner.pipeline.feedback, settings.escalate_slack_usergroup)
        self.feedback.listen(self.app)

    @property
    def pipeline(self) -> Pipeline:
        return self.runner.pipeline

    async def _authorize(self) -> AuthorizeResult:
        """bolt's authorisation of every request, from the bot's identity, which the client
        asks Slack for once per process (`SlackClient.auth_test`): bolt's own would call
        `auth.test` for every request of a burst until its first answer is cached."""
        identity = await self.client.auth_test()
        return AuthorizeResult.from_auth_test_response(
            auth_test_response=identity, bot_token=self.client.token
        )

    async def __aenter__(self) -> SlackBot:
        self._watching = asyncio.create_task(self.policy.watch())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._watching is not None:
            self._watching.cancel()
            await asyncio.gather(self._watching, return_exceptions=True)
        await self.runner.aclose()

    async def drain(self) -> None:
        """Wait for every turn in flight, and the clicks being kept (tests, a clean shutdown)."""
        await self.runner.drain()
        await self.feedback.drain()

    def http_app(self) -> web.Application:
        """HTTP mode: bolt's aiohttp server app, with signature checks, at /slack/events."""
        if self.settings.slack_signing_secret is None:
            # Without it every request would pass a check made with an empty key.
            raise ValueError("HTTP mode needs SLACK_SIGNING_SECRET")
        app = AsyncSlackAppServer(port=self.settings.slack_port, path=EVENTS_PATH, app=self.app)
        app.web_app.middlewares.append(_malformed_is_400)
        return app.web_app

    async def _on_event(
        self, body: dict[str, Any], context: AsyncBoltContext, request: AsyncBoltRequest
    ) -> None:
        retried = bool(request.headers.get("x-slack-retry-num"))
        # Decided now, before anything is awaited: the configuration as last read.
        policies = self.policy.snapshot()
        parsed = turn_from_slack(
            body, context.bot_user_id or "", retried=retried, modes=self.modes, policies=policies
        )
        if parsed is None:
            return
        turn, place = parsed
        rules = access_for(policies, place.where, self.rules)
        me = frozenset(i for i in (context.bot_user_id, context.bot_id) if i)
        thread_messages = self._reading(place)

        async def may_answer() -> bool:
            if place.needs_thread_check and not await self._bot_in_thread(
                turn.session_id, me, thread_messages
            ):
                return False
            groups = await self._groups_of(turn.user, rules.groups) if rules.lists_groups else ()
            try:
                rules.check(turn.user, groups, [place.channel], is_dm=place.is_dm)
            except NotAllowed:
                # An auto channel the file switched off stays quiet to what nobody addressed.
                if place.mentioned or place.is_dm or (place.auto and rules.answers is not False):
                    raise  # asked: told privately
                return False  # a thread reply nobody addressed to the bot: quietly not
            return True

        asked = self._asked(place, me, thread_messages)
        await self.runner.submit(turn, self._sink(turn, place), only_if=may_answer, asked=asked)

    def _reading(self, place: SlackPlace) -> ThreadRead:
        """The thread of `place`, read once however many ask for it."""
        read: list[tuple[list[dict[str, Any]], bool]] = []

        async def thread_messages() -> tuple[list[dict[str, Any]], bool]:
            if not read:
                read.append(
                    await threads.replies(self.client, place.channel, place.thread_ts or place.ts)
                )
            return read[0]

        return thread_messages

    def _asked(self, place: SlackPlace, me: frozenset[str], read: ThreadRead) -> Asked:
        """What came with the question asked at `place`: its thread and its files, described
        (ids and URLs, no token) so that `asked_for` rebuilds them after a crash."""

        async def earlier(at_most: int) -> Earlier:
            messages, more = await read()
            return threads.earlier(messages, place.ts, me, at_most, more)

        token = self.client.token or ""
        return Asked(
            thread=earlier if place.earlier_in_thread else None,
            files=[SlackFile(f, token, self._file_hosts) for f in place.files],
            where={"place": asdict(place)} if place.earlier_in_thread or place.files else None,
        )

    async def asked_for(self, where: Mapping[str, Any]) -> Asked:
        """What came with an interrupted question, rebuilt from its description."""
        described = dict(where["place"])
        place = SlackPlace(**{**described, "files": tuple(described.get("files") or ())})
        identity = await self.client.auth_test()  # cached: the bot's own ids
        me = frozenset(i for i in (identity.get("user_id"), identity.get("bot_id")) if i)
        return self._asked(place, me, self._reading(place))

    def _sink(self, turn: Turn, place: SlackPlace) -> SlackSink | SlackStreamSink:
        showing: dict[str, Any] = {
            "pacer": self.pacer,
            "status": self.status,
            "loading": loading_messages(thread=place.earlier_in_thread, files=bool(place.files)),
            "buttons": self.buttons,
            "usergroup": self.settings.escalate_slack_usergroup,
        }
        if self.settings.slack_streaming == "native" and place.thread_ts:
            return SlackStreamSink(
                self.client, place.channel, place.thread_ts, place.team, turn.user, **showing
            )
        return SlackSink(self.client, place.channel, place.thread_ts, turn.user, **showing)

    async def sink_for(self, where: dict[str, Any]) -> SlackSink | None:
        """The sink of a reply a crashed process left unfinished (None: not a Slack reply)."""
        if where.get("platform") != "slack":
            return None
        return SlackSink(
            self.client, where["channel"], where.get("thread_ts"), where["user"], pacer=self.pacer,
            buttons=self.buttons, usergroup=self.settings.escalate_slack_usergroup,
        )  # fmt: skip

    async def _bot_in_thread(
        self, session_id: str, me: frozenset[str], thread_messages: ThreadRead
    ) -> bool:
        """Has the bot a conversation here (history, or a reply of its own in the thread)?

        Never raises: when neither can be read, the bot stays quiet rather than tell someone in
        a thread it may have no part in that something went wrong.
        """
        try:
            if await self.pipeline.has_history(session_id):
                return True
        except ThreadbotError:
            pass  # the store is down: the thread itself says whether the bot is in it
        try:
            messages, _ = await thread_messages()
        except (SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("not answering in %s: cannot read the thread (%s)", session_id, exc)
            return False
        return any(threads.written_by(m, me) for m in messages)

    async def _groups_of(self, user: str, allowed: frozenset[str]) -> list[str]:
        """The `allowed` user groups `user` is in; a group that cannot be read counts as not
        including them (the allow list fails closed)."""
        now = asyncio.get_running_loop().time()
        found = []
        for group in sorted(allowed):
            until, members = self._groups.get(group, (0.0, frozenset()))
            if until < now:
                try:
                    response = await self.client.usergroups_users_list(usergroup=group)
                    members = frozenset(response.get("users") or ())
                    self._groups[group] = (now + GROUPS_TTL_S, members)
                except (SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
                    # Not asked again for a while: a missing scope would cost a call (and a
                    # warning) per message.
                    self._groups[group] = (now + GROUPS_RETRY_S, members)
                    log.warning("cannot read the members of user group %s: %s", group, exc)
            if user in members:
                found.append(group)
        return found

    async def _on_reset_command(self, ack: Any, command: dict[str, Any]) -> None:
        """/reset: slash commands carry no thread, so it forgets the whole DM or channel."""
        channel = str(command.get("channel_id", ""))
        is_dm = command.get("channel_name") == "directmessage" or channel.startswith("D")
        turn = Turn(
            platform="slack",
            session_id=sessions.slack_session(str(command["team_id"]), channel),
            user=str(command.get("user_id", "")),
            place=place_words(None, is_dm),
            action="reset_all",
        )
        try:
            await asyncio.wait_for(self.runner.run(turn, SlashResponse(ack)), SLACK_ACK_S)
        except TimeoutError:
            await ack(text="My conversation store is slow right now; please try /reset again.")

    async def _on_reset_shortcut(self, ack: Any, shortcut: dict[str, Any]) -> None:
        """The "Reset conversation" message shortcut: forgets the thread of that message."""
        await ack()
        message = shortcut.get("message") or {}
        channel = str((shortcut.get("channel") or {}).get("id", ""))
        team = str((shortcut.get("team") or {}).get("id", ""))
        user = str((shortcut.get("user") or {}).get("id", ""))
        is_dm = channel.startswith("D")
        thread_ts = message.get("thread_ts") or (None if is_dm else message.get("ts"))
        turn = Turn(
            platform="slack",
            session_id=sessions.slack_session(team, channel, thread_ts),
            user=user,
            place=place_words(thread_ts, is_dm),
            action="reset",
        )
        await self.runner.submit(
            turn, SlackSink(self.client, channel, thread_ts, user, pacer=self.pacer)
        )


def build_slack_bot(
    settings: Settings, pipeline: Pipeline, *, client: AsyncWebClient | None = None
) -> SlackBot:
    """The bot with its handlers registered; `bot.app` is the bolt `AsyncApp`."""
    runner = TurnRunner(
        pipeline,
        interval_s=settings.slack_edit_interval_ms / 1000,
        grace_s=settings.shutdown_grace_s,
        post_deadline_s=settings.answer_timeout_s,
    )
    return SlackBot(settings, runner, client if client is not None else make_client(settings))


async def serve(settings: Settings) -> int:
    """Run until cancelled: Socket Mode with an app token, else HTTP on SLACK_PORT."""
    missing = missing_settings(settings)
    if missing:
        return cannot_start("slack", missing)
    metrics = Metrics()
    timeout = aiohttp.ClientTimeout(total=WEB_API_TIMEOUT_S)
    traced = [metrics.http_trace("slack")]
    async with (
        await Pipeline.create(settings, metrics=metrics) as pipeline,
        aiohttp.ClientSession(timeout=timeout, trace_configs=traced) as http,
        build_slack_bot(settings, pipeline, client=make_client(settings, session=http)) as bot,
    ):
        problem = await rejected(bot.client, settings)
        if problem is not None:
            return problem
        bot.runner.start_recovery(bot.sink_for, bot.asked_for)
        health = Health.watching(bot.runner, settings, metrics)
        if settings.slack_app_token is not None:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            log.info("Slack bot starting in Socket Mode")
            handler = AsyncSocketModeHandler(bot.app, settings.slack_app_token.get_secret_value())
            health.connected = handler.client.is_connected
            async with health.serving():
                try:
                    await handler.start_async()
                finally:
                    await handler.close_async()
                    await bot.runner.aclose()  # answers finish while /readyz says 503
            return ExitCode.OK
        app = bot.http_app()
        health.mount(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        async with health.serving():
            try:
                await web.TCPSite(
                    runner,
                    settings.slack_host,
                    settings.slack_port,
                    reuse_port=settings.slack_reuse_port,
                ).start()
                log.info(
                    "Slack bot listening on %s:%d%s",
                    settings.slack_host,
                    settings.slack_port,
                    EVENTS_PATH,
                )
                await asyncio.Event().wait()
            finally:
                await bot.runner.aclose()  # answers finish while new events get 503
                await runner.cleanup()
    return ExitCode.OK


def main(settings: Settings) -> int:
    """`threadbot slack`: 0 when stopped, 2 with a clear log line when a token is missing."""
    return asyncio.run(until_stopped(serve(settings)))
