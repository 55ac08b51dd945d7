"""The `/incident` family: parse (words); declare, lifecycle, reminders and their shared rules
(changes); views (replies); ports (Slack)."""

from commands.incident.handlers import family

__all__ = ["family"]
