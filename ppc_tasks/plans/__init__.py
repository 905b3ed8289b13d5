"""What each collection decides, apart from what its tasks do: pure functions of the
settings and a host's facts (and what this machine holds) that return steps, and the
facts they ask for. Collections and deploy compose them; nothing here talks to a host."""
