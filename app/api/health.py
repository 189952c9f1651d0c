"""``/health``: is the platform up, and what is it running on."""

from __future__ import annotations

from fastapi import APIRouter

from app import __version__
from app.api.deps import PlatformDep
from app.platform import Platform

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
        # TWINGRAPH_BRICK_VERSION / TWINGRAPH_ONTOLOGY_EXTENSIONS, and the release loaded.
        "brick": {
            "version": platform.settings.brick_version,
            "release": platform.startup.get("brick_release"),
            "extensions": list(platform.settings.ontology_extensions),
        },
        "startup": platform.startup,
        "anonymous_read": platform.settings.anonymous_read,
        "telemetry": platform.telemetry.features.as_dict() if platform.telemetry else None,
        # Platform-kept rollups (plain PostgreSQL): materialized up to when, per level.
        "telemetry_rollups": _rollups(platform),
        # Twin leadership of this process (app.twins.leader); None: no twin services here.
        "twins": _twins(platform),
    }


def _rollups(platform: Platform) -> dict[str, object] | None:
    rollups = platform.telemetry.rollups if platform.telemetry is not None else None
    return rollups.status() if rollups is not None else None


def _twins(platform: Platform) -> dict[str, object] | None:
    runtime = platform.twins.runtime if platform.twins is not None else None
    return runtime.status() if runtime is not None else None
