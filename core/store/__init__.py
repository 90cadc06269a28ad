"""The store: everything kept in Redis — the key layout, event claims, the line of a
conversation, saves and resets, the key migration, operator queries — plus the history format,
leases, session ids, the Redis client and the embedded server.

Knows nothing of turns, answers or platforms.
"""
