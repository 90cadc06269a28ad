"""The app manifest asks for exactly the scopes and events the adapter uses, no more."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

import bots.slack

FOLDER = Path(bots.slack.__file__).parent
# Each Web API method the adapter calls, and the scope Slack checks for it (None: no scope).
METHODS = {
    "auth_test": None,
    "apps_connections_open": None,  # the app-level token's connections:write
    "chat_postMessage": "chat:write",
    "chat_update": "chat:write",
    "chat_postEphemeral": "chat:write",
    "chat_startStream": "chat:write",
    "chat_appendStream": "chat:write",
    "chat_stopStream": "chat:write",
    "assistant_threads_setStatus": "chat:write",  # accepted with chat:write since 2026
    "conversations_replies": "channels:history",  # groups:history in private channels
    "usergroups_users_list": "usergroups:read",
}
# Scopes needed beyond the methods: for events, commands and downloads.
OTHER_SCOPES = {
    "app_mentions:read",  # app_mention events
    "groups:history",  # conversations.replies and message.groups in private channels
    "im:history",  # message.im
    "files:read",  # url_private downloads of files attached to a question
    "commands",  # /reset and the message shortcut
}
EVENTS = {"app_mention", "message.channels", "message.groups", "message.im"}
_CALL = re.compile(r"\.((?:chat|conversations|assistant|usergroups|auth|apps|files|users)_\w+)\b")


def test_the_manifest_holds_exactly_the_scopes_and_events_used() -> None:
    manifest = yaml.safe_load((FOLDER / "manifest.yml").read_text())
    needed = {scope for scope in METHODS.values() if scope} | OTHER_SCOPES
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == needed
    assert set(manifest["settings"]["event_subscriptions"]["bot_events"]) == EVENTS
    # The assistant surface is not used: the thread status needs only chat:write.
    assert "assistant:write" not in needed and "assistant_view" not in manifest["features"]


def test_every_method_the_adapter_calls_is_listed_with_its_scope() -> None:
    called = {m for source in FOLDER.glob("*.py") for m in _CALL.findall(source.read_text())}
    assert called == set(METHODS)
