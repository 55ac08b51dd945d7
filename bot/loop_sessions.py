"""Closing aiohttp sessions kept one per event loop: aiohttp binds a session to the loop that
opened it, so each is closed on its own loop (the metric sources' shared session, the leader's
guarded Slack client)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp


async def close_each_on_its_loop(
    sessions: Mapping[asyncio.AbstractEventLoop, aiohttp.ClientSession],
) -> None:
    """Close every session on the loop that opened it; a loop that no longer runs took its
    session with it."""
    here = asyncio.get_running_loop()
    for loop, session in sessions.items():
        if loop is here:
            await session.close()
        elif loop.is_running():
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(session.close(), loop))
