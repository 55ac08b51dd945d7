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


def require(policy: Policy, action: str, request: Request, *, subject: str) -> None:
    """Raise Forbidden (audited) unless the actor holds the permission."""
    if not may(policy, action, request):
        roles = ", ".join(policy.roles_for(action)) or "nobody"
        message = f"you need the permission {action} (held by: {roles})"
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
