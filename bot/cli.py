"""The `wavegate` command: serve, console, db upgrade, policy check, manifest."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import re
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
    from commands.policy import Policy

log = logging.getLogger("wavegate")


def fail(message: str, code: int = 2) -> int:
    print(f"wavegate: {message}", file=sys.stderr)
    return code


def policy_check(path: str | None, *, live: bool = False) -> int:
    """Exit 0 and print `ok`, or exit 1 and print every problem on its own line. `live` also
    runs every query once against its source (commands/analysis/live_check.py)."""
    try:
        policy = load_policy(path)
    except PolicyInvalid as exc:
        for problem in exc.problems:
            print(problem)
        return 1
    if live:
        failures = asyncio.run(_live_problems(policy))
        for failure in failures:
            print(failure)
        if failures:
            return 1
    print("ok")
    return 0


async def _live_problems(policy: Policy) -> list[str]:
    from bot.sources.http import SourceHttp
    from bot.sources.registry import build_sources
    from commands.analysis.live_check import live_problems

    http = SourceHttp()
    try:
        return await live_problems(policy, build_sources(policy, **http.shared()))
    finally:
        await http.close()


# The host the shipped manifest names, replaced by `wavegate manifest --url`.
EXAMPLE_HOST = "https://wavegate.example.com"


def manifest(url: str | None, *, socket_mode: bool) -> int:
    """Print the Slack app manifest for a host (`--url https://host`) or for Socket Mode."""
    from importlib.resources import files

    text = (files("bot.slack") / "manifest.yml").read_text(encoding="utf-8")
    if socket_mode:
        # Over Socket Mode Slack sends everything on the socket: no request URLs.
        text = text.replace("socket_mode_enabled: false", "socket_mode_enabled: true")
        text = re.sub(rf"(?m)^ *(?:request_)?url: {re.escape(EXAMPLE_HOST)}\S*\n", "", text)
    if url is not None:
        base = url.rstrip("/")
        if not base.startswith("https://") or "/" in base.removeprefix("https://"):
            return fail(f"--url must be https://host (Slack calls only HTTPS), not {url!r}")
        text = text.replace(EXAMPLE_HOST, base)
    elif not socket_mode:
        return fail("say where Slack reaches wavegate: --url https://host, or --socket-mode")
    print(text, end="")
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


# The console's own user: a role naming only it is held by nobody over Slack.
CONSOLE_USER = "U0CONSOLE"
SLACK_CHECK_TIMEOUT = 10


def policy_warnings(policy: Policy) -> list[str]:
    """What a policy leaves undone over Slack, one line each (the built-in policy does both)."""
    warnings = []
    unset = [
        f"channels.{name}"
        for name in ("rollouts", "incidents")
        if not getattr(policy.channels, name)
    ]
    if unset:
        warnings.append(
            f"no channels are set ({' and '.join(unset)} in WAVEGATE_POLICY): rollout status "
            "and incident announcements are not posted"
        )
    if not {m for members in policy.roles.values() for m in members if m != CONSOLE_USER}:
        warnings.append(
            "no one holds a role (roles in WAVEGATE_POLICY name no Slack user or group): "
            "nobody may start, promote, resume or roll back a rollout from Slack"
        )
    return warnings


async def check_slack(settings: Settings) -> str | None:
    """Ask Slack whether it takes the tokens: the first refusal as one line, else None. Slack out
    of reach is only a warning: the service starts and its posts wait in the outbox."""
    import aiohttp
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    base = settings.slack_api_url
    unreachable = (aiohttp.ClientError, asyncio.TimeoutError, OSError)
    bot = AsyncWebClient(token=settings.slack_bot_token, base_url=base, timeout=SLACK_CHECK_TIMEOUT)
    try:
        identity = await bot.auth_test()
    except SlackApiError as exc:
        return f"SLACK_BOT_TOKEN: Slack refused it ({exc.response.get('error')})"
    except unreachable as exc:
        log.warning("cannot reach Slack at %s to check the tokens (%s); starting anyway", base, exc)
        return None
    log.info("Slack: bot %s in workspace %s", identity.get("user"), identity.get("team"))
    if settings.slack_app_token is not None:
        # The Socket Mode client retries a refused app token forever: ask once, here.
        try:
            await AsyncWebClient(base_url=base, timeout=SLACK_CHECK_TIMEOUT).apps_connections_open(
                app_token=settings.slack_app_token
            )
        except SlackApiError as exc:
            return f"SLACK_APP_TOKEN: Slack refused it ({exc.response.get('error')})"
        except unreachable as exc:
            log.warning("cannot reach Slack at %s to open Socket Mode (%s)", base, exc)
    return None


def serve(settings: Settings) -> int:
    from bot.http.app import create_app
    from bot.http.keys import BOLT
    from storage.db import schema_is_current

    settings.require_for_serve()
    runtime = _runtime(settings)
    if not schema_is_current(runtime.engine):
        return fail("DATABASE_URL: the schema is not at head; run `wavegate db upgrade`")
    refused = asyncio.run(check_slack(settings))
    if refused is not None:
        return fail(refused)
    for warning in policy_warnings(runtime.policy):
        log.warning(warning)
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
    how = "Socket Mode" if settings.slack_app_token is not None else "HTTP"

    def serving(_: str) -> None:
        # aiohttp calls this once the app has started (the socket connected) and the port listens.
        log.info("wavegate serving on port %s (%s)", settings.port, how)

    # Everything built so far (modules, the app, its clients) lives as long as the process: out
    # of the collector's reach, a full collection walks only what requests made since, instead
    # of stopping both loops for ~100 ms while it walks every module and class again.
    gc.collect()
    gc.freeze()
    web.run_app(app, port=settings.port, print=serving, access_log=access_logger(settings))
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
    app = commands.add_parser("manifest", help="print the Slack app manifest for your host")
    app.add_argument("--url", help="the public https://host Slack sends requests to")
    app.add_argument("--socket-mode", action="store_true", help="for Socket Mode (SLACK_APP_TOKEN)")
    policy = commands.add_parser("policy", help="policy file tools")
    check = policy.add_subparsers(dest="policy_command", required=True).add_parser(
        "check", help="validate a policy file"
    )
    check.add_argument("file", nargs="?", help="default: $WAVEGATE_POLICY, else the built-in one")
    check.add_argument(
        "--live", action="store_true", help="also run every query once against its source"
    )
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "policy":
        path = args.file or os.environ.get("WAVEGATE_POLICY") or None
        return policy_check(path, live=args.live)
    if args.command == "manifest":
        return manifest(args.url, socket_mode=args.socket_mode)
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
