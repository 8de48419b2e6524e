"""Integrations with engines users already run: ``exporter.integrations.ray`` (Ray Data batch inference)."""
