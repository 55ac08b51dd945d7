"""The HTTP side: the aiohttp app, its keys, health, Slack events and the `/api/v1` resources."""
