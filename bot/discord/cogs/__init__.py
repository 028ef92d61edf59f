"""Feature packages loaded as discord.py extensions; each package's __init__ holds only setup()."""
