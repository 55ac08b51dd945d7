"""The one place the ports are built: Slack client, metric sources, actuator and incident chat."""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from bot.actuator import build_actuator
from bot.runtime import Runtime
from bot.settings import Settings
from bot.sources.registry import build_sources
from commands.ports import IncidentChat, LocalActuator


def slack_client(settings: Settings) -> AsyncWebClient:
    return AsyncWebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url)


def wire(runtime: Runtime, *, chat: IncidentChat | None = None) -> Runtime:
    """Fill in the ports nobody provided yet (tests put their own fakes there first): a client for
    every metric source of the policy, on one shared HTTP session; the policy's actuator webhook;
    the incident chat."""
    ports = runtime.ports
    if not ports.sources:
        ports.sources = build_sources(runtime.policy, **runtime.source_http.shared())
    if isinstance(ports.actuator, LocalActuator):
        actuator = build_actuator(runtime.policy)
        if actuator is not None:
            ports.actuator = actuator
    if ports.chat is None and chat is not None:
        ports.chat = chat
    return runtime
