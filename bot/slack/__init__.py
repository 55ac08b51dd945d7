"""The Slack side: the Bolt app, request building, listeners, rendering and the chat port."""
