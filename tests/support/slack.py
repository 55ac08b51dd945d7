"""A fake Slack Web API on loopback: real HTTP, recorded calls, failures on demand.

The client under test reaches it through `base_url` (SLACK_API_URL), exactly as it would reach
slack.com; `response_url` posts land here too.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_TOKEN = "xoxb-test-token"


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    token: str | None


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
        self.calls.append(Call(method, args, token))
        if method == "apps.connections.open" and self.socket_url and str(token)[:5] == "xapp-":
            return web.json_response({"ok": True, "url": self.socket_url})
        if token != BOT_TOKEN:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        pending = self.failures.get(method)
        if pending:
            failure = pending[0]
            failure.times -= 1
            if failure.times <= 0:
                pending.pop(0)
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else {}
            return web.json_response(
                {"ok": False, "error": failure.error}, status=failure.status, headers=headers
            )
        return web.json_response({"ok": True, **self._answer(method, args)})

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
