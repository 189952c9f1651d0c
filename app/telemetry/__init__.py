"""Telemetry: readings in PostgreSQL/TimescaleDB keyed by the points' time-series UUIDs."""
