"""A fake Slack Web API on loopback: real HTTP, recorded calls, failures on demand.

The client under test reaches it through `base_url` (SLACK_API_URL), exactly as it would reach
slack.com; `response_url` posts land here too. `via_url(name)` gives each replica of a test its
own base URL into one fake, so calls say who made them. Like a de-duplicating proxy, it answers
a chat.postMessage whose `client_msg_id` it has seen with the first message, posting nothing.
`storm(method)` rate-limits a method the way Slack does: every Nth call gets a 429 with
Retry-After, and the method stays refused until the window passes (a call inside it is a
`violation`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_TOKEN = "xoxb-test-token"


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    token: str | None
    # time.monotonic() when the call arrived; which base URL it came through; what it got.
    at: float = 0.0
    via: str = ""
    status: int = 200
    error: str | None = None
    duplicate: bool = False


@dataclass
class Storm:
    """Every `every`-th call is refused with 429 + Retry-After; so is every call in the window."""

    every: int
    retry_after: int
    seen: int = 0
    closed_until: float = 0.0
    limited: int = 0
    violations: int = 0


@dataclass
class Failure:
    error: str
    status: int = 200
    retry_after: int | None = None
    times: int = 1


@dataclass
class FakeSlack:
    calls: list[Call] = field(default_factory=list)
    responses: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    usergroups: dict[str, list[str]] = field(default_factory=dict)
    failures: dict[str, list[Failure]] = field(default_factory=dict)
    url: str = ""
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _channels: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None
    channel_names: dict[str, str] = field(default_factory=dict)
    # Set by tests.support.socket_mode when a Socket Mode server is attached.
    socket_url: str = ""
    storms: dict[str, Storm] = field(default_factory=dict)
    # client_msg_id → the answer the first post with it got.
    posted: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Seconds every API call takes (a slow Slack).
    delay: float = 0.0
    # method → awaited while a call of that method is held, before it is answered (a test
    # looks at what the caller holds meanwhile).
    holds: dict[str, Callable[[Call], Awaitable[None]]] = field(default_factory=dict)
    # files.uploadV2: the bytes POSTed to each upload URL, by file id.
    uploads: dict[str, bytes] = field(default_factory=dict)
    _files: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # ------------------------------------------------------------ test API

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self, key: str = "1") -> str:
        return f"{self.url}/response/{key}"

    def fail(
        self,
        method: str,
        error: str,
        *,
        status: int = 200,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next `times` calls of `method` fail (429 + Retry-After for rate limits)."""
        self.failures.setdefault(method, []).append(Failure(error, status, retry_after, times))

    def via_url(self, name: str) -> str:
        """A base URL into this fake whose calls are recorded with `via=name`."""
        return f"{self.url}/via/{name}/api/"

    def storm(self, method: str, *, every: int, retry_after: int) -> Storm:
        self.storms[method] = Storm(every, retry_after)
        return self.storms[method]

    def accepted(self, method: str = "chat.postMessage") -> list[Call]:
        """Calls Slack carried out: not refused, not dropped as a duplicate."""
        return [c for c in self.calls_to(method) if c.error is None and not c.duplicate]

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def methods(self) -> list[str]:
        return [call.method for call in self.calls]

    def posts(self) -> list[dict[str, Any]]:
        return [call.args for call in self.calls_to("chat.postMessage")]

    def uploaded(self) -> list[dict[str, Any]]:
        """Each completed upload: channel, title, comment and the content that was POSTed."""
        done = []
        for call in self.calls_to("files.completeUploadExternal"):
            files = call.args.get("files")
            listed = json.loads(files) if isinstance(files, str) else files or []
            for item in listed:
                done.append(
                    {
                        "channel": call.args.get("channel_id"),
                        "title": item.get("title"),
                        "comment": call.args.get("initial_comment"),
                        "content": self.uploads.get(str(item.get("id")), b"").decode(),
                    }
                )
        return done

    def responses_to(self, key: str = "1") -> list[dict[str, Any]]:
        return [body for path_key, body in self.responses if path_key == key]

    # ------------------------------------------------------------ server

    async def start(self) -> FakeSlack:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        # slack_sdk sends some read methods (conversations.history, …) as GET.
        app.router.add_get("/api/{method}", self._api)
        app.router.add_post("/via/{via}/api/{method}", self._api)
        app.router.add_post("/response/{key}", self._response)
        # The upload URL files.getUploadURLExternal hands out (files.slack.com in Slack).
        app.router.add_post("/upload/{file_id}", self._upload)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _args(self, request: web.Request) -> dict[str, Any]:
        args: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                args.update(body)
        else:
            form = await request.post()
            for key, value in form.items():
                text = str(value)
                if key in {"blocks", "attachments", "view", "users"} and text[:1] in "[{":
                    args[key] = json.loads(text)
                else:
                    args[key] = text
        return args

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await self._args(request)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else args.get("token")
        call = Call(method, args, token, at=time.monotonic(), via=request.match_info.get("via", ""))
        self.calls.append(call)
        if self.delay:
            await asyncio.sleep(self.delay)
        if (hold := self.holds.get(method)) is not None:
            await hold(call)
        if method == "apps.connections.open" and self.socket_url and str(token)[:5] == "xapp-":
            return web.json_response({"ok": True, "url": self.socket_url})
        if token != BOT_TOKEN:
            call.error = "invalid_auth"
            return web.json_response({"ok": False, "error": "invalid_auth"})
        storm = self.storms.get(method)
        if storm is not None:
            if call.at < storm.closed_until:
                storm.violations += 1
                return self._refuse(call, "ratelimited", 429, storm.closed_until - call.at)
            storm.seen += 1
            if storm.seen % storm.every == 0:
                storm.limited += 1
                storm.closed_until = call.at + storm.retry_after
                return self._refuse(call, "ratelimited", 429, storm.retry_after)
        pending = self.failures.get(method)
        if pending:
            failure = pending[0]
            failure.times -= 1
            if failure.times <= 0:
                pending.pop(0)
            return self._refuse(call, failure.error, failure.status, failure.retry_after)
        client_msg_id = args.get("client_msg_id")
        if method == "chat.postMessage" and client_msg_id in self.posted:
            call.duplicate = True
            return web.json_response(self.posted[str(client_msg_id)])
        answer = {"ok": True, **self._answer(method, args)}
        if method == "chat.postMessage" and client_msg_id:
            self.posted[str(client_msg_id)] = answer
        return web.json_response(answer)

    def _refuse(
        self, call: Call, error: str, status: int, retry_after: float | None
    ) -> web.Response:
        call.error, call.status = error, status
        headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after else {}
        return web.json_response({"ok": False, "error": error}, status=status, headers=headers)

    async def _response(self, request: web.Request) -> web.Response:
        self.responses.append((request.match_info["key"], await request.json()))
        return web.Response(text="ok")

    async def _upload(self, request: web.Request) -> web.Response:
        self.uploads[request.match_info["file_id"]] = await request.read()
        return web.Response(text="OK - 200")

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {
                "url": "https://wavegate-test.slack.com/",
                "team": "wavegate-test",
                "user": "wavegate",
                "team_id": "T0TEST",
                "user_id": "U0BOT",
                "bot_id": "B0BOT",
            }
        if method in {"chat.postMessage", "chat.update", "chat.postEphemeral"}:
            ts = args.get("ts") or f"1700000000.{next(self._ts):06d}"
            return {
                "channel": args.get("channel"),
                "ts": ts,
                "message": {"text": args.get("text"), "ts": ts},
            }
        if method == "conversations.create":
            name = str(args.get("name", ""))
            if name in self.channel_names.values():
                return {"ok": False, "error": "name_taken"}
            channel_id = f"C0INC{next(self._channels):04d}"
            self.channel_names[channel_id] = name
            return {"channel": {"id": channel_id, "name": name}}
        if method == "usergroups.users.list":
            return {"users": self.usergroups.get(str(args.get("usergroup")), [])}
        if method == "files.getUploadURLExternal":
            file_id = f"F0FILE{next(self._files):04d}"
            return {"upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}
        if method == "files.completeUploadExternal":
            files = args.get("files")
            listed = json.loads(files) if isinstance(files, str) else files or []
            return {
                "files": [
                    {
                        "id": item.get("id"),
                        "title": item.get("title"),
                        "permalink": f"https://wavegate-test.slack.com/files/U0BOT/{item.get('id')}",
                    }
                    for item in listed
                ]
            }
        if method == "views.open":
            return {"view": {"id": "V0VIEW"}}
        if method == "chat.getPermalink":
            return {
                "permalink": f"https://wavegate-test.slack.com/archives/{args.get('channel')}"
                f"/p{str(args.get('message_ts', '')).replace('.', '')}"
            }
        return {}
