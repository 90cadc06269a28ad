"""Discord: the discord.py bot and Cog (`bot`), the pure translator from messages to turns
(`translator`), the sink that posts and edits replies (`sink`), the settings it needs (`setup`) and
the REST and gateway endpoints tests point it at (`endpoint`)."""
