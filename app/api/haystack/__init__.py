"""A Haystack-compatible HTTP API over the model graphs and telemetry (``/haystack``)."""

from app.api.haystack.router import haystack_router

__all__ = ["haystack_router"]
