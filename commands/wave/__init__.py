"""The `/wave` family: rollouts through a plan's waves (parse → rules → views)."""

from commands.wave.family import family

__all__ = ["family"]
