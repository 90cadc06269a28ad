"""The turn: the platform seam and the one runner every adapter hands its turns to.

Holds `Turn` and the sink protocols an adapter implements (`types`), the `TurnRunner` that
claims, answers, shows and releases a turn (`runner`), and the per-session task registry
(`tasks`). May import `core.answer`, `core.reply`, `core.store` and `core.ops.logs`; nothing
below it (knowledge, store) imports this package.
"""
