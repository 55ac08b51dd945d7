"""The work loop (bot/work.py): while it is held, the HTTP loop still answers /healthz and
acknowledges commands; the held work then runs on the work loop's thread and answers."""

from __future__ import annotations

import asyncio
import threading

from tests.conftest import Service


async def test_the_http_loop_answers_while_the_work_loop_is_held(service: Service) -> None:
    work = service.runtime.work
    assert work.threaded
    released = threading.Event()
    block = work.spawn(_block(released))
    try:
        # Fails (instead of hanging) if the HTTP loop waited for the work loop.
        async with asyncio.timeout(10), service.http.get(f"{service.url}/healthz") as response:
            assert response.status == 200
        # A command answered in the ack is answered on the HTTP loop; one answered after the
        # ack is acknowledged while its work waits.
        response = await service.command("/ready", "new 2026.12.02-9")
        assert response.status == 200
        assert "Registered" in (await response.json())["text"]
        response = await service.command("/wave", "start 2026.12.02-9")
        assert response.status == 200
        assert await response.text() == ""
        assert service.slack.responses_to() == []  # its work has not run
    finally:
        released.set()
    await asyncio.wait_for(block, 5)
    for _ in range(200):
        if service.slack.responses_to():
            break
        await asyncio.sleep(0.025)
    assert service.slack.responses_to(), "the work after the ack never answered"


async def _block(released: threading.Event) -> None:
    """Hold the work loop's thread itself until released (a unit of work that blocks)."""
    released.wait()


async def test_work_after_the_ack_runs_on_the_work_loops_thread(service: Service) -> None:
    work = service.runtime.work
    seen: list[str] = []

    async def where() -> None:
        seen.append(threading.current_thread().name)

    await work.spawn(where())
    assert seen == [work.name]
    assert work.name != threading.current_thread().name
