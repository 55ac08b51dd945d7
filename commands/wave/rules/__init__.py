"""Rollout rules: start, promote, pause, resume, roll back; the gate; reactions to verdicts.

Every change calls the actuator first (nothing is written if it fails), then changes the rollout
with a compare-and-set on its `version`, audits, posts the event in the rollout's thread and
updates the status message in place.
"""

from __future__ import annotations

from commands.wave.rules.advance import promote_rollout, start_rollout
from commands.wave.rules.base import (
    SYSTEM,
    ActuatorUnavailable,
    Blocker,
    actuate,
    idempotency_key,
    note_actuator_failure,
    plan_of,
    release_of,
    subject_of,
    thread_key,
    window_passed,
)
from commands.wave.rules.gate import (
    incident_blockers,
    judge_rollout,
    promotion_blockers,
    require_promoter,
    view_of,
)
from commands.wave.rules.pause import pause_rollout, pause_running_rollouts, resume_rollout
from commands.wave.rules.posts import (
    STATUS_REFRESH,
    audit,
    post_event,
    publish_status,
    refresh_status,
    who,
)
from commands.wave.rules.reactions import DuePoll, daily_digest, due_polls, react, record_readings
from commands.wave.rules.rollback import rollback_release, rollout_to_roll_back

__all__ = [
    "STATUS_REFRESH",
    "SYSTEM",
    "ActuatorUnavailable",
    "Blocker",
    "DuePoll",
    "actuate",
    "audit",
    "daily_digest",
    "due_polls",
    "idempotency_key",
    "incident_blockers",
    "judge_rollout",
    "note_actuator_failure",
    "pause_rollout",
    "pause_running_rollouts",
    "plan_of",
    "post_event",
    "promote_rollout",
    "promotion_blockers",
    "publish_status",
    "react",
    "record_readings",
    "refresh_status",
    "release_of",
    "require_promoter",
    "resume_rollout",
    "rollback_release",
    "rollout_to_roll_back",
    "start_rollout",
    "subject_of",
    "thread_key",
    "view_of",
    "who",
    "window_passed",
]
