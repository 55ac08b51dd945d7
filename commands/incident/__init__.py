"""The `/incident` family: parse (words); declare, lifecycle, reminders and their shared rules
(changes); views (replies); actions (buttons, forms, pins); chat (the Slack port)."""
