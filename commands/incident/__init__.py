"""The `/incident` family: parse (words), rules (changes), views (replies), ports (Slack)."""

from commands.incident.handlers import family

__all__ = ["family"]
