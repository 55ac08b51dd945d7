"""`/rollback`: a confirm step first, the permission checked at the press, the last known-good
release as the target (or plainly none), everything audited."""

from __future__ import annotations

import json

import pytest

from commands.core import Context, Reply, Request
from commands.policy import Policy
from commands.wave.buttons import press
from storage.models import ReleaseState
from storage.releases import get_release
from tests.conftest import COMMANDER, DEVELOPER, MANAGER, run
from tests.support.waves import (
    audit_trail,
    local_actuator,
    rollout,
    small_policy,
    start,
    thread_posts,
)


@pytest.fixture
def policy() -> Policy:
    roles = {"release-managers": [MANAGER], "incident-commanders": [COMMANDER], "vips": [MANAGER]}
    return small_policy().model_copy(update={"roles": roles})


def confirm_button(reply: Reply) -> dict[str, object]:
    for block in reply.blocks or []:
        for element in block.get("elements", []):
            if element["action_id"] == "wave.rollback.confirm":
                return dict(element)
    raise AssertionError(f"no Confirm rollback button in {reply.text!r}")


async def confirm(ctx: Context, value: object, user: str = COMMANDER) -> Reply:
    request = Request(command="wave.rollback.confirm", text="", user_id=user)
    return await press(request, ctx, "wave.rollback.confirm", str(value))


async def complete(ctx: Context, version: str) -> None:
    await start(ctx, version)
    for _ in range(3):
        assert not (await run(ctx, f"/wave promote {version} --force setup")).error
    assert rollout(ctx, version).state == "complete"


async def test_rollback_asks_for_confirmation_and_changes_nothing(ctx: Context) -> None:
    actuator = local_actuator(ctx)
    await complete(ctx, "0.9")
    await start(ctx, "1.0")
    reply = await run(ctx, "/rollback error rate doubled")
    assert "Roll back *1.0* to the last known-good release *0.9*?" in reply.text
    assert "Reason: error rate doubled" in reply.text
    button = confirm_button(reply)
    assert button["text"]["text"] == "Confirm rollback"  # type: ignore[index]
    assert button["confirm"]["confirm"]["text"] == "Roll back"  # type: ignore[index]
    assert json.loads(str(button["value"])) == {"release": "1.0", "reason": "error rate doubled"}
    assert rollout(ctx, "1.0").state == "running"
    assert "rollback" not in [a.action for a in actuator.sent]


async def test_confirming_rolls_back_to_the_last_known_good(ctx: Context) -> None:
    actuator = local_actuator(ctx)
    await complete(ctx, "0.9")
    await start(ctx, "1.0")
    reply = await run(ctx, "/rollback 1.0 error rate doubled", user=COMMANDER)
    done = await confirm(ctx, confirm_button(reply)["value"])
    assert done.text == "Rolled back 1.0 to 0.9. Reason: error rate doubled"
    current = rollout(ctx, "1.0")
    assert current.state == "rolled_back"
    assert current.finished_at == ctx.now()
    release = get_release("1.0", session=ctx.session)
    assert release is not None
    assert release.state == ReleaseState.rolled_back
    sent = actuator.sent[-1]
    assert (sent.action, sent.release, sent.target, sent.actor) == (
        "rollback",
        "1.0",
        "0.9",
        COMMANDER,
    )
    (event,) = audit_trail(ctx.session, "rollback")
    assert (event.actor, event.reason, event.detail) == (
        COMMANDER,
        "error rate doubled",
        "target 0.9",
    )
    assert (
        "rolled back *1.0* to the last known-good release *0.9*"
        in thread_posts(
            ctx.session,
            current.id,
        )[-1]
    )
    history = (await run(ctx, "/wave history 1.0")).text
    assert "asked for a rollback" in history
    assert "rolled back — target 0.9 — why: error rate doubled" in history


async def test_with_no_known_good_release_the_message_says_so(ctx: Context) -> None:
    actuator = local_actuator(ctx)
    await start(ctx, "1.0")
    reply = await run(ctx, "/rollback broken")
    assert (
        "with *no last known-good release to return to* (the deploy system removes it)"
        in reply.text
    )
    done = await confirm(ctx, confirm_button(reply)["value"], user=MANAGER)
    assert (
        done.text == "Rolled back 1.0 with no last known-good release to return to. Reason: broken"
    )
    assert actuator.sent[-1].target is None


async def test_only_someone_with_the_permission_can_confirm(ctx: Context) -> None:
    await start(ctx, "1.0")
    reply = await run(ctx, "/rollback broken")
    refused = await confirm(ctx, confirm_button(reply)["value"], user=DEVELOPER)
    assert refused.error
    assert "may confirm a rollback" in refused.text
    assert rollout(ctx, "1.0").state == "running"
    assert [(e.actor, e.outcome) for e in audit_trail(ctx.session, "rollback")] == [
        (DEVELOPER, "refused")
    ]


async def test_rollback_request_needs_the_permission_too(ctx: Context) -> None:
    await start(ctx, "1.0")
    reply = await run(ctx, "/rollback broken", user=DEVELOPER)
    # Without `rollback` the typed rollback is a request in the thread (two people), not a
    # rollback; without `rollback.request` either it is refused.
    assert not reply.error
    assert "Asked for a rollback of 1.0" in reply.text
    assert rollout(ctx, "1.0").state == "running"
    permissions = {**ctx.policy.permissions, "rollback.request": ["release-managers"]}
    ctx.policy = ctx.policy.model_copy(update={"permissions": permissions})
    refused = await run(ctx, "/rollback broken", user=DEVELOPER)
    assert refused.error
    assert "only release-managers may ask for a rollback" in (refused.text)


async def test_the_rollback_request_button_answers_with_the_same_confirm_step(
    ctx: Context,
) -> None:
    await start(ctx, "1.0")
    value = json.dumps({"release": "1.0", "reason": "migration regression"})
    request = Request(command="wave.rollback.request", text="", user_id=COMMANDER)
    reply = await press(request, ctx, "wave.rollback.request", value)
    assert "Roll back *1.0*" in reply.text
    assert json.loads(str(confirm_button(reply)["value"]))["reason"] == "migration regression"
    assert rollout(ctx, "1.0").state == "running"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/rollback", "say why you roll back"),
        ("/rollback 1.0", "say why you roll back"),
    ],
)
async def test_a_rollback_needs_a_reason(ctx: Context, line: str, message: str) -> None:
    await start(ctx, "1.0")
    reply = await run(ctx, line)
    assert reply.error
    assert message in reply.text
    assert "Usage: `/rollback [RELEASE] REASON`" in reply.text


async def test_rolling_back_twice_or_a_release_never_started_is_a_conflict(
    ctx: Context,
) -> None:
    await start(ctx, "1.0")
    await run(ctx, "/ready new 2.0")
    reply = await run(ctx, "/rollback 1.0 broken")
    await confirm(ctx, confirm_button(reply)["value"])
    again = await confirm(ctx, json.dumps({"release": "1.0", "reason": "again"}))
    assert again.text == "Conflict: 1.0 was already rolled back"
    never = await run(ctx, "/rollback 2.0 nope")
    assert never.text == "Conflict: 2.0 was never rolled out; nothing to roll back"
