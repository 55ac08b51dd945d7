"""The App Home tab: what one person sees when they open wavegate in Slack."""
