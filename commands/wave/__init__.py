"""The `/wave` family: rollouts through a plan's waves (parse → rules → views)."""
