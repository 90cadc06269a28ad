"""Platform adapters: each turns a chat event into a session id and a question for the core."""
