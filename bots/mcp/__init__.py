"""MCP: the team's knowledge base as tools for Claude Code, Cursor or any MCP client. The server
and `threadbot mcp` (`server`), the tools `search` and `ask` (`tools`), and streamable HTTP with
its bearer token and loopback rule (`http`). Imports only `core`'s public names and the `mcp`
SDK."""
