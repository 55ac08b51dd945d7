"""The `/ready` family: the readiness checklist of a release (family → checklist, verification)."""
