"""`turn_from_discord` and the rules, past what test_bot.py covers: bare mentions, replies to
someone else, listed channels, allow lists in DMs, place words, rules from the settings."""

from __future__ import annotations

from typing import Any

from bots.discord.translator import DiscordRules, place_words, turn_from_discord
from core.turn.types import Turn
from tests.bots.discord.test_bot import parse
from tests.conftest import IsolatedSettings
from tests.fakes.fake_discord import FakeDiscord


def turn(fake: FakeDiscord, payload: Any, rules: DiscordRules | None = None) -> Turn | None:
    message = parse(fake, payload)
    return turn_from_discord(message, bot_id=fake.bot_id, rules=rules or DiscordRules())


def test_a_bare_mention_is_a_turn_with_an_empty_question():
    fake = FakeDiscord()
    found = turn(fake, fake.message_create("", mention_bot=True))
    assert found is not None
    assert found.question == ""
    assert found.platform == "discord" and found.user == "4242"
    assert found.place == "in this channel"


def test_empty_text_in_a_listed_channel_is_nothing_to_answer():
    fake = FakeDiscord()
    listed = DiscordRules(channels=frozenset({fake.channel_id}))
    assert turn(fake, fake.message_create("   "), listed) is None
    found = turn(fake, fake.message_create("no mention needed"), listed)
    assert found is not None and found.question == "no mention needed"


def test_a_reply_to_someone_else_is_not_addressed_to_the_bot():
    fake = FakeDiscord()
    someone = fake.message_create("my own message", author_id=777)
    reply = fake.message_create("and then?", reply_to=dict(someone))
    assert turn(fake, reply) is None


def test_the_bots_own_message_is_ignored_even_if_not_flagged_as_a_bot():
    fake = FakeDiscord()
    mine = fake.message_create("hi", mention_bot=True, author_id=fake.bot_id)
    assert turn(fake, mine) is None


def test_a_mention_of_another_user_is_kept_in_the_question():
    fake = FakeDiscord()
    found = turn(fake, fake.message_create("ask <@999> about it", mention_bot=True))
    assert found is not None and found.question == "ask <@999> about it"


def test_allow_lists_apply_in_dms_too():
    fake = FakeDiscord()
    rules = DiscordRules(allow_dms=True, users=frozenset({1}))
    dm = fake.message_create("private", channel_id=555, guild=False)
    assert turn(fake, dm, rules) is None
    allowed = fake.message_create("private", channel_id=555, guild=False, author_id=1)
    found = turn(fake, allowed, rules)
    assert found is not None
    assert found.place == "in this DM"
    assert found.session_id == "discord:{dm:555}"


def test_a_listed_thread_is_in_this_thread():
    fake = FakeDiscord()
    found = turn(fake, fake.message_create("hello", channel_id=fake.thread_id, mention_bot=True))
    assert found is not None and found.place == "in this thread"


def test_place_words_for_other_objects_is_the_channel():
    assert place_words(object()) == "in this channel"


def test_rules_from_settings():
    settings = IsolatedSettings(
        discord_channels=[10, 11],
        discord_allow_dms=True,
        discord_allowed_users=[1],
        discord_allowed_roles=[7],
    )
    rules = DiscordRules.from_settings(settings)
    assert rules == DiscordRules(
        channels=frozenset({10, 11}),
        allow_dms=True,
        users=frozenset({1}),
        roles=frozenset({7}),
    )
    assert DiscordRules.from_settings(IsolatedSettings()) == DiscordRules()


def test_users_and_roles_lists_each_admit_on_their_own():
    users_only = DiscordRules(users=frozenset({1}))
    assert users_only.allows(1, []) and not users_only.allows(2, [7])
    roles_only = DiscordRules(roles=frozenset({7}))
    assert roles_only.allows(2, [3, 7]) and not roles_only.allows(1, [])
