"""Judging a wave: measurements, the judge, SLO burn rates, guardrails and the poller's checks."""
