"""Who may do what: the policy's permissions and roles applied to a request."""

from __future__ import annotations

from commands.core import Forbidden, Request
from commands.policy import EVERYONE, Policy


def in_role(policy: Policy, role: str, request: Request) -> bool:
    if role == EVERYONE:
        return True
    members = policy.roles.get(role, [])
    return request.user_id in members or any(g in request.user_groups for g in members)


def may(policy: Policy, action: str, request: Request) -> bool:
    return any(in_role(policy, role, request) for role in policy.roles_for(action))


# What each permission lets a person do, as a refusal says it (the audit keeps the id).
DOING = {
    "ready.new": "register a release",
    "ready.check": "check a checklist item",
    "ready.fail": "fail a checklist item",
    "ready.waive": "waive a checklist item",
    "wave.start": "start a rollout",
    "wave.promote": "promote a wave",
    "wave.pause": "pause a rollout",
    "wave.resume": "resume a rollout",
    "wave.force": "force past a closed gate",
    "rollback": "confirm a rollback",
    "rollback.request": "ask for a rollback",
    "incident.declare": "declare an incident",
    "incident.update": "update an incident",
    "incident.resolve": "resolve an incident",
    "incident.followup": "add or close a follow-up",
    "incident.followup.waive": "waive a follow-up",
    "incident.role": "hand out incident roles",
    "incident.stakeholders": "update the stakeholders",
}


def who_may(policy: Policy, action: str) -> str:
    """`only release-managers may waive a checklist item`."""
    roles = policy.roles_for(action)
    doing = DOING.get(action, "do this")
    if not roles:
        return f"nobody may {doing}"
    names = roles[0] if len(roles) == 1 else ", ".join(roles[:-1]) + " and " + roles[-1]
    return f"only {names} may {doing}"


def require(policy: Policy, action: str, request: Request, *, subject: str) -> None:
    """Raise Forbidden (audited) unless the actor holds the permission."""
    if not may(policy, action, request):
        message = who_may(policy, action)
        unread = sorted(
            {g for r in policy.roles_for(action) for g in policy.roles.get(r, [])}
            & request.unread_groups
        )
        if unread:
            message += (
                f"; the members of user group {', '.join(unread)} could not be read from Slack "
                "just now, so your membership is unknown: try again in a moment"
            )
        raise Forbidden(message, action=action, subject=subject)


def group_ids(policy: Policy) -> set[str]:
    """User-group ids (S…) named by any role: the bot resolves a user's membership of these."""
    return {m for members in policy.roles.values() for m in members if m.startswith("S")}
