"""The reply: the platform-agnostic streaming editor (post once, edit at a pace, split at the
sink's limit, back off on 429, the final edit) and the pacing shared by a workspace's replies.

Imports only `core.errors`: every adapter's sink plugs into it.
"""
