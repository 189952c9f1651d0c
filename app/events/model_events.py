"""Model writes become revisions and events: the ModelService listener the platform adds."""

from __future__ import annotations

import logging

from app.errors import AppError, ValidationFailedError
from app.events.bus import EventBus
from app.events.model import Event
from app.graph.models import ModelChange
from app.history.revisions import Revision, RevisionStore

log = logging.getLogger("twingraph.events")

_PAST = {"replace": "replaced", "merge": "merged", "update": "updated", "delete": "deleted"}


class ModelEventRecorder:
    """Records each committed change as a revision, then publishes ``model.<verb>``;
    refused writes publish ``validation.failed`` (SHACL) or ``model.rejected`` (others)."""

    def __init__(self, *, revisions: RevisionStore | None, bus: EventBus | None) -> None:
        self._revisions = revisions
        self._bus = bus

    def committed(self, change: ModelChange) -> None:
        """The revision and its event commit in one PostgreSQL transaction: a listener
        told of revision N can read it. If that fails, the model store has committed
        anyway: the event still goes out, without a revision."""
        if self._revisions is not None and self._bus is not None:
            try:
                with self._revisions.connection() as conn, self._bus.outbox(conn) as box:
                    box.add(_event(change, self._revisions.record(change, conn=conn)))
                return
            except Exception:
                log.exception("could not record the revision of <%s>", change.graph)
            revision_less = _event(change, None)
            if revision_less is not None:
                self._bus.publish_safely(revision_less)
            return
        revision = None
        if self._revisions is not None:
            try:
                revision = self._revisions.record(change)
            except Exception:  # the store committed; losing history must not undo it
                log.exception("could not record the revision of <%s>", change.graph)
        event = _event(change, revision)
        if self._bus is not None and event is not None:
            self._bus.publish_safely(event)

    def rejected(
        self, *, graph: str | None, operation: str, error: AppError, author: str | None
    ) -> None:
        if self._bus is None:
            return
        failed = isinstance(error, ValidationFailedError)
        data: dict[str, object] = {
            "operation": operation,
            "status": error.status,
            "code": error.code,
            "detail": str(error),
        }
        if failed and "report" in error.extra:
            report = error.extra["report"]
            if isinstance(report, dict):
                data["violations"] = report.get("violations")
                data["results"] = list(report.get("results", []))[:20]
        self._bus.publish_safely(
            Event(
                type="validation.failed" if failed else "model.rejected",
                graph=graph,
                author=author,
                ok=False,
                data=data,
            )
        )


def _event(change: ModelChange, revision: Revision | None) -> Event | None:
    """``model.<verb>`` for a change (None for a change that changed nothing)."""
    if not change.added and not change.removed:
        return None
    return Event(
        type=f"model.{_PAST.get(change.operation, change.operation)}",
        graph=change.graph,
        author=change.author,
        data={
            "revision": revision.id if revision else None,
            "added": len(change.added),
            "removed": len(change.removed),
        },
    )
