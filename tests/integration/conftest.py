"""The real-backend fixtures (tests/support/backends.py) for the integration suite."""

from tests.support.backends import backends, stack, stack_rules

__all__ = ["backends", "stack", "stack_rules"]
