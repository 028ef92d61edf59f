"""The Discord front-end: client, cogs, persistent buttons and narrator message streaming."""
