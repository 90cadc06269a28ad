"""Slack: the bolt app (`bot`), the pure translator from events to turns (`translator`), the sink
that posts and edits replies (`sink`, with Markdown to mrkdwn in `mrkdwn`), the client and token
checks (`setup`) and the app's manifest (`manifest.yml`)."""
