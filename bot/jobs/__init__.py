"""Scheduled work: the scheduler and each job family."""
