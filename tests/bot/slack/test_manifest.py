"""The Slack app manifest: every command at the one events URL with escaped mentions, the App
Home and Messages tabs, the events the code listens to, and exactly the scopes the code uses."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml

from commands.router import ALIASES, ROOT
from tests.support.paths import ROOT as CHECKOUT

MANIFEST = CHECKOUT / "slack" / "manifest.yml"
SHIPPED = CHECKOUT / "bot" / "slack" / "manifest.yml"

# Every Web API method wavegate may call, and the bot scope it needs (None: no scope).
METHOD_SCOPES: dict[str, str | None] = {
    # Called with the app-level token (its own scope, connections:write), not the bot token.
    "apps.connections.open": None,
    "auth.test": None,
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "conversations.create": "channels:manage",
    "conversations.invite": "channels:manage",
    "conversations.setTopic": "channels:manage",
    "conversations.archive": "channels:manage",
    # slack_sdk's files_upload_v2: files.getUploadURLExternal, then files.completeUploadExternal.
    "files.upload.v2": "files:write",
    "conversations.history": "channels:history",
    "usergroups.users.list": "usergroups:read",
    "views.open": None,
    "views.publish": None,
}
EVENT_SCOPES: dict[str, str | None] = {
    "app_home_opened": None,
    "pin_added": "pins:read",
    "reaction_added": "reactions:read",
}
# Needed by features rather than by a call: slash commands, and posting in the rollouts and
# incidents channels without being invited to them first.
FEATURE_SCOPES = {"commands", "chat:write.public"}
API_FAMILIES = [
    "apps",
    "auth",
    "chat",
    "conversations",
    "files",
    "pins",
    "reactions",
    "usergroups",
    "users",
    "views",
]


def manifest() -> dict[str, object]:
    return dict(yaml.safe_load(MANIFEST.read_text()))


def methods_the_code_calls() -> set[str]:
    """`client.chat_postMessage(` → `chat.postMessage`, over every module under bot/."""
    families = "|".join(API_FAMILIES)
    call = re.compile(rf"\.((?:{families})_[A-Za-z0-9_]+)\(")
    found = set()
    for path in (CHECKOUT / "bot").rglob("*.py"):
        for name in call.findall(path.read_text()):
            found.add(name.replace("_", "."))
    return found


def events_the_code_listens_to() -> set[str]:
    listen = re.compile(r"\.event\(\"([a-z_]+)\"\)")
    return {e for p in (CHECKOUT / "bot").rglob("*.py") for e in listen.findall(p.read_text())}


def test_manifest_declares_every_command_at_the_events_url_with_escaped_mentions() -> None:
    data = manifest()
    features = data["features"]
    assert isinstance(features, dict)
    commands = {c["command"]: c for c in features["slash_commands"]}
    assert set(commands) == {ROOT, *ALIASES}
    assert {c["url"].rsplit("/", 2)[-2:] == ["slack", "events"] for c in commands.values()} == {
        True
    }
    assert {c["should_escape"] for c in commands.values()} == {True}
    settings = data["settings"]
    assert isinstance(settings, dict)
    assert settings["interactivity"]["request_url"].endswith("/slack/events")
    assert settings["event_subscriptions"]["request_url"].endswith("/slack/events")


def test_home_and_messages_tabs_are_enabled() -> None:
    features = manifest()["features"]
    assert isinstance(features, dict)
    assert features["app_home"]["home_tab_enabled"] is True
    assert features["app_home"]["messages_tab_enabled"] is True


def test_the_events_subscribed_are_the_events_listened_to() -> None:
    settings = manifest()["settings"]
    assert isinstance(settings, dict)
    subscribed = set(settings["event_subscriptions"]["bot_events"])
    assert subscribed == events_the_code_listens_to()
    assert "app_home_opened" in subscribed


def test_scopes_are_exactly_what_the_code_calls() -> None:
    called = methods_the_code_calls()
    # The table must know every method the code calls, so a new call cannot slip by unscoped.
    assert called <= set(METHOD_SCOPES), f"add to METHOD_SCOPES: {called - set(METHOD_SCOPES)}"
    assert {"chat.postMessage", "chat.update", "views.publish", "auth.test"} <= called
    scopes = [METHOD_SCOPES[m] for m in called] + [
        EVENT_SCOPES[e] for e in events_the_code_listens_to()
    ]
    needed = {scope for scope in scopes if scope is not None} | FEATURE_SCOPES
    oauth = manifest()["oauth_config"]
    assert isinstance(oauth, dict)
    granted = set(oauth["scopes"]["bot"])
    assert granted == needed
    assert not {"users:read", "channels:read", "groups:write"} & granted


def test_the_packaged_copy_is_the_public_file() -> None:
    assert SHIPPED.read_text() == MANIFEST.read_text()


def wavegate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, check=False
    )


def test_manifest_command_prints_the_manifest_for_a_host() -> None:
    done = wavegate("manifest", "--url", "https://ops.acme.dev/")
    assert done.returncode == 0, done.stderr
    printed = yaml.safe_load(done.stdout)
    urls = {c["url"] for c in printed["features"]["slash_commands"]}
    assert urls == {"https://ops.acme.dev/slack/events"}
    assert printed["settings"]["interactivity"]["request_url"] == (
        "https://ops.acme.dev/slack/events"
    )
    assert "https://wavegate.example.com" not in done.stdout


def test_manifest_for_socket_mode_has_no_request_urls() -> None:
    done = wavegate("manifest", "--socket-mode")
    assert done.returncode == 0, done.stderr
    printed = yaml.safe_load(done.stdout)
    assert printed["settings"]["socket_mode_enabled"] is True
    assert "url" not in printed["features"]["slash_commands"][0]
    assert "request_url" not in printed["settings"]["event_subscriptions"]


def test_manifest_refuses_a_plain_http_host_in_one_line() -> None:
    done = wavegate("manifest", "--url", "http://ops.acme.dev")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().count("\n") == 0
    assert "--url must be https://host" in done.stderr
