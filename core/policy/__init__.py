"""Per-place policy: the configuration file (`threadbot.toml`) that says, for every workspace or
guild, category, channel and DMs, which knowledge bases answer there, in which reply mode and
for whom — and the one rule that keeps a private base out of every place it is not mapped to.

May import `core.settings` and `core.errors` (and, for types only, `core.turn.access`); knows
no platform client, Redis or model.
"""
