"""`wavegate console`: the commands in a terminal, with no Slack."""
