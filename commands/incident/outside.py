"""Escaping text from outside (people, Slack messages, probes) for Slack mrkdwn (DESIGN §11)."""

from __future__ import annotations


def escape(text: str) -> str:
    """`&`, `<` and `>` as Slack's entities: nobody can mention a group or paste a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
