"""Rollout rules: start, promote, pause, resume, roll back; the gate; reactions to verdicts."""
