"""The work loop: one thread with its own event loop, on which every unit of work runs.

`wavegate serve` has two event loops. The HTTP loop (the main thread) only does the front:
reading bodies, checking signatures, Bolt's ack, the read-only commands answered in the ack,
/healthz, /readyz, /metrics and the lease renewal. Everything else — the work after an ack, the
scheduled jobs and the poll loop, the outbox worker, the API's units, the App Home refresh — runs
on the work loop. A command's own database, ORM and Block Kit work is synchronous; on the work
loop it delays other work, never an ack or a health check: the GIL hands the HTTP thread the
interpreter within a switch interval (`SWITCH_INTERVAL`).

The writes of every unit of work come from the work loop's one thread. The HTTP loop's own
database work is that of the commands answered in the ack: reads, and a few short writes
(`/ready new|fail|waive`, `/incident status`); no transaction spans an await, so such a write
waits at most for one short transaction of the work loop (SQLite's busy wait), never for the
network.

Not started (the console, tests that drive jobs by hand), a WorkLoop runs everything on the
caller's loop, as one loop did before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long a thread that wants the GIL waits before the holder is asked to drop it (Python's
# default is 5 ms). Each time the HTTP thread blocks on its socket it gives the GIL away, and it
# waits up to this long to get it back while the work thread computes; a request takes several
# such turns, so 1 ms keeps /healthz and acks within a few milliseconds of the work thread's
# load, for a few percent more switching on the work thread.
SWITCH_INTERVAL = 0.001


# Seconds a task cancelled at a stop gets to end.
STOP_WAIT = 5.0


class WorkLoop:
    """Where units of work run: a thread of their own once `start()`ed, else the caller's loop."""

    def __init__(self, name: str = "wavegate-work") -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def threaded(self) -> bool:
        return self.loop is not None

    def on_loop(self) -> bool:
        """Whether the caller runs on the work loop (always, when it is not threaded)."""
        return self._thread is None or threading.current_thread() is self._thread

    # ------------------------------------------------------------ start, stop

    def start(self) -> None:
        """Start the thread and its loop; returns once the loop runs."""
        if self._thread is not None:
            return
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self.loop = loop
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        sys.setswitchinterval(SWITCH_INTERVAL)
        self._thread = threading.Thread(target=main, name=self.name, daemon=True)
        self._thread.start()
        ready.wait()

    async def stop(self) -> None:
        """Cancel what still runs on the work loop, wait for it to end, stop the thread."""
        loop, thread = self.loop, self._thread
        if loop is None or thread is None:
            return
        await self.run(_cancel_the_rest())
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join)
        self.loop, self._thread = None, None

    # ------------------------------------------------------------ handing work over

    def spawn(self, work: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
        """Start `work` on the work loop; a future of its result on the caller's loop
        (cancelling it cancels the work)."""
        if self.loop is None or self.on_loop():
            return asyncio.ensure_future(work)
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self.loop))

    async def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on the work loop and wait for its result."""
        if self.loop is None or self.on_loop():
            return await work
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self.loop))

    async def call(self, fn: Callable[[], T]) -> T:
        """Call a synchronous `fn` (a unit of work with no await in it) on the work loop."""
        if self.loop is None or self.on_loop():
            return fn()

        async def called() -> T:
            return fn()

        return await self.run(called())

    def call_soon(self, fn: Callable[[], Any]) -> None:
        """Call `fn` on the work loop, from any thread (to set its asyncio events)."""
        if self.loop is None or self.on_loop():
            fn()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed: nothing waits any more
                self.loop.call_soon_threadsafe(fn)

    async def start_task(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """A task of `work` on the work loop, for work that runs until it is cancelled (the
        outbox worker, a watcher); end it with `cancel_task`."""

        async def started() -> asyncio.Task[T]:
            return asyncio.create_task(work)

        return await self.run(started())

    async def cancel_task(self, task: asyncio.Task[Any]) -> None:
        """Cancel a task of `start_task` and wait (at most STOP_WAIT) until it has ended."""

        async def cancelled() -> None:
            task.cancel()
            await asyncio.wait({task}, timeout=STOP_WAIT)
            if not task.done():
                log.warning("%r did not end when cancelled", task)

        await self.run(cancelled())


async def _cancel_the_rest() -> None:
    current = asyncio.current_task()
    rest = [task for task in asyncio.all_tasks() if task is not current]
    for task in rest:
        task.cancel()
    if not rest:
        return
    done, pending = await asyncio.wait(rest, timeout=STOP_WAIT)
    for task in done:
        if not task.cancelled() and (error := task.exception()) is not None:
            log.warning("work left at shutdown failed: %r", error)
    for task in pending:  # it swallowed its cancellation: the thread ends without it
        log.warning("work left at shutdown did not end when cancelled: %r", task)
