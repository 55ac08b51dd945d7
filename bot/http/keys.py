"""The aiohttp application's keys: what the handlers find on `request.app`."""

from __future__ import annotations

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from slack_bolt.async_app import AsyncApp

from bot.outbox import OutboxDelivery
from bot.runtime import Runtime
from bot.slack.home import HomePublisher
from bot.slack.requests import Listeners

RUNTIME = web.AppKey("runtime", Runtime)
BOLT = web.AppKey("bolt", AsyncApp)
LISTENERS = web.AppKey("listeners", Listeners)
HOME = web.AppKey("home", HomePublisher)
SCHEDULER = web.AppKey("scheduler", AsyncIOScheduler)
DELIVERY = web.AppKey("delivery", OutboxDelivery)
