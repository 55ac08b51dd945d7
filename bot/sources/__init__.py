"""Metric source clients: Prometheus, HTTP JSON and the demo generator (DESIGN §4)."""
