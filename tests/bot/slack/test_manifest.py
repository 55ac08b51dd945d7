"""The Slack app manifest routes every slash command and interaction to the one events URL."""

from __future__ import annotations

import yaml

from commands.router import ALIASES, ROOT
from tests.support.paths import ROOT as CHECKOUT

MANIFEST = CHECKOUT / "slack" / "manifest.yml"


def test_manifest_declares_every_command_at_the_events_url() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    commands = {c["command"]: c["url"] for c in manifest["features"]["slash_commands"]}
    assert set(commands) == {ROOT, *ALIASES}
    assert {url.rsplit("/", 2)[-2:] == ["slack", "events"] for url in commands.values()} == {True}
    settings = manifest["settings"]
    assert settings["interactivity"]["request_url"].endswith("/slack/events")
    assert settings["event_subscriptions"]["request_url"].endswith("/slack/events")
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"commands", "chat:write", "channels:manage", "usergroups:read"} <= scopes
