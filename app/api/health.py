"""``/health``: is the platform up, and what is it running on."""

from __future__ import annotations

from fastapi import APIRouter

from app import __version__
from app.api.deps import PlatformDep

router = APIRouter(tags=["health"])


@router.get("/health")
def health(platform: PlatformDep) -> dict[str, object]:
    return {
        "status": "ok",
        "version": __version__,
        "graph_store": {
            "mode": platform.store.mode,
            "location": platform.settings.graph_url or str(platform.settings.store_dir),
        },
        "ontologies": [{"name": s.name, "file": str(s.path)} for s in platform.sources],
        "startup": platform.startup,
        "anonymous_read": platform.settings.anonymous_read,
        "telemetry": platform.telemetry.features.as_dict() if platform.telemetry else None,
    }
