"""The `wavegate` command: serve, console, db upgrade, policy check."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from aiohttp import web

from bot.logs import configure_logging
from bot.settings import Settings, SettingsError, load_settings
from commands.policy_file import PolicyInvalid, load_policy

if TYPE_CHECKING:
    from bot.runtime import Runtime
    from commands.core import Clock

log = logging.getLogger("wavegate")


def fail(message: str, code: int = 2) -> int:
    print(f"wavegate: {message}", file=sys.stderr)
    return code


def policy_check(path: str | None) -> int:
    """Exit 0 and print `ok`, or exit 1 and print every problem on its own line."""
    try:
        load_policy(path)
    except PolicyInvalid as exc:
        for problem in exc.problems:
            print(problem)
        return 1
    print("ok")
    return 0


def _runtime(settings: Settings, clock: Clock | None = None) -> Runtime:
    from bot.runtime import Runtime
    from commands.core import system_clock

    try:
        return Runtime.from_settings(settings, clock=clock or system_clock)
    except PolicyInvalid as exc:
        first = exc.problems[0]
        more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        raise SettingsError(
            f"WAVEGATE_POLICY: {exc.source} is invalid: {first}{more}; "
            "run `wavegate policy check` to see every problem"
        ) from None


def db_upgrade(settings: Settings) -> int:
    from storage.db import make_engine, upgrade

    upgrade(make_engine(settings.database_url))
    print("database is at the newest schema")
    return 0


def console(settings: Settings, *, user: str, speed: float) -> int:
    from bot.clock import SpeedClock
    from bot.console.repl import Console, console_channels
    from commands.core import system_clock
    from storage.db import upgrade

    runtime = _runtime(settings, clock=SpeedClock(speed) if speed != 1 else system_clock)
    upgrade(runtime.engine)
    console_channels(runtime)
    asyncio.run(Console(runtime, user_id=user).repl())
    return 0


def serve(settings: Settings) -> int:
    from bot.http.app import create_app
    from bot.http.keys import BOLT
    from storage.db import schema_is_current

    settings.require_for_serve()
    runtime = _runtime(settings)
    if not schema_is_current(runtime.engine):
        return fail("DATABASE_URL: the schema is not at head; run `wavegate db upgrade`")
    app = create_app(runtime)
    if settings.slack_app_token is not None:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        async def socket_mode(app: web.Application) -> AsyncIterator[None]:
            handler = AsyncSocketModeHandler(app[BOLT], settings.slack_app_token)
            await handler.connect_async()  # type: ignore[no-untyped-call]
            log.info("connected to Slack in Socket Mode")
            yield
            await handler.close_async()  # type: ignore[no-untyped-call]

        app.cleanup_ctx.append(socket_mode)
    log.info("wavegate serving on port %s", settings.port)
    web.run_app(app, port=settings.port, print=None, access_log=access_logger(settings))
    return 0


def access_logger(settings: Settings) -> logging.Logger | None:
    """aiohttp's access log with `LOG_ACCESS=1`; None (off, and no per-request formatting
    work at all) by default."""
    return logging.getLogger("aiohttp.access") if settings.log_access else None


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="wavegate", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the service (HTTP on $PORT, or Socket Mode)")
    con = commands.add_parser("console", help="the commands in a terminal, with no Slack")
    con.add_argument("--user", default="U0CONSOLE", help="the Slack user id you act as")
    con.add_argument(
        "--speed", type=float, default=1.0, help="make time pass N times faster (demo)"
    )
    db = commands.add_parser("db", help="database maintenance")
    db.add_subparsers(dest="db_command", required=True).add_parser(
        "upgrade", help="migrate to the newest schema"
    )
    policy = commands.add_parser("policy", help="policy file tools")
    check = policy.add_subparsers(dest="policy_command", required=True).add_parser(
        "check", help="validate a policy file"
    )
    check.add_argument("file", nargs="?", help="default: $WAVEGATE_POLICY, else the built-in one")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "policy":
        return policy_check(args.file or os.environ.get("WAVEGATE_POLICY") or None)
    try:
        settings = load_settings()
        configure_logging(settings.log_level, settings.log_format)
        if args.command == "db":
            return db_upgrade(settings)
        if args.command == "console":
            if args.speed <= 0:
                return fail("--speed must be positive")
            return console(settings, user=args.user, speed=args.speed)
        return serve(settings)
    except SettingsError as exc:
        return fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())
