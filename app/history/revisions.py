"""Revisions: every committed model change, with its diff, in PostgreSQL.

A revision is one change to one graph (an update touching two graphs makes two): author,
time, operation, the triples added and removed as N-Triples. Revision times increase with
ids (an advisory lock orders writers), which is what "the model as of T" relies on: undo,
newest first, every revision after T.

Graphs loaded before revisions were recorded count as present from the beginning.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from app.errors import InvalidInputError, NotFoundError
from app.graph.models import ModelChange
from app.telemetry.db import translate_errors

#: pg_advisory_xact_lock key ordering revision writers ("TwinGraph revisions").
REVISION_LOCK_KEY = 0x7467_7276


@dataclass(frozen=True, slots=True)
class Revision:
    id: int
    time: datetime
    author: str | None
    graph: str
    operation: str
    added: int
    removed: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": self.time.isoformat(),
            "author": self.author,
            "graph": self.graph,
            "operation": self.operation,
            "added": self.added,
            "removed": self.removed,
        }


@dataclass(frozen=True, slots=True)
class Diff:
    """Net triples added and removed (N-Triples lines), per graph."""

    added: dict[str, set[bytes]]
    removed: dict[str, set[bytes]]


_COLUMNS = "id, time, author, graph, operation, added, removed"
Conn = psycopg.Connection[Any]


def _pack(lines: Sequence[bytes]) -> bytes:
    return zlib.compress(b"\n".join(lines), 3) if lines else b""


def _unpack(blob: bytes) -> list[bytes]:
    return zlib.decompress(blob).splitlines() if blob else []


class RevisionStore:
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def connection(self) -> AbstractContextManager[Conn]:
        """A connection of the store's pool, to record a revision in a caller's transaction."""
        return self._pool.connection()

    def record(self, change: ModelChange, *, conn: Conn | None = None) -> Revision | None:
        """Store a change; a change that adds and removes nothing is not a revision.

        With ``conn`` (inside a transaction of the caller's), the revision commits with
        that transaction; otherwise in one of its own."""
        if not change.added and not change.removed:
            return None
        if conn is not None:
            return self._insert(conn, change)
        with (
            translate_errors("revision record"),
            self._pool.connection() as own,
            own.transaction(),
        ):
            return self._insert(own, change)

    @staticmethod
    def _insert(conn: Conn, change: ModelChange) -> Revision:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (REVISION_LOCK_KEY,))
        row = conn.execute(
            "INSERT INTO revisions (author, graph, operation, added, removed, added_nt, "
            f"removed_nt) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
            (
                change.author,
                change.graph,
                change.operation,
                len(change.added),
                len(change.removed),
                _pack(change.added),
                _pack(change.removed),
            ),
        ).fetchone()
        assert row is not None
        return Revision(*row)

    def find(
        self,
        *,
        graph: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[Revision]:
        clauses, params = ["id > %s"], [after_id]
        for clause, value in (("graph = %s", graph), ("time >= %s", since), ("time <= %s", until)):
            if value is not None:
                clauses.append(clause)
                params.append(value)  # type: ignore[arg-type]
        params.append(limit)
        with translate_errors("revision list"), self._pool.connection() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM revisions WHERE {' AND '.join(clauses)} "  # noqa: S608
                "ORDER BY id LIMIT %s",
                params,
            ).fetchall()
        return [Revision(*row) for row in rows]

    def get(self, revision_id: int) -> tuple[Revision, list[bytes], list[bytes]]:
        with translate_errors("revision read"), self._pool.connection() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS}, added_nt, removed_nt FROM revisions WHERE id = %s",
                (revision_id,),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"No revision {revision_id}", code="revision_not_found")
        return Revision(*row[:7]), _unpack(row[7]), _unpack(row[8])

    def latest_id(self, *, until: datetime | None = None) -> int:
        """The newest revision id (at or before ``until``); 0 when there is none."""
        with translate_errors("revision read"), self._pool.connection() as conn:
            if until is None:
                row = conn.execute("SELECT coalesce(max(id), 0) FROM revisions").fetchone()
            else:
                row = conn.execute(
                    "SELECT coalesce(max(id), 0) FROM revisions WHERE time <= %s", (until,)
                ).fetchone()
        return int(row[0]) if row else 0

    def diff(self, from_id: int, to_id: int, *, graph: str | None = None) -> Diff:
        """The net change from the state after ``from_id`` to the state after ``to_id``
        (``from_id`` 0 = before the first revision). Reversed ids give the inverse."""
        if from_id < 0 or to_id < 0:
            raise InvalidInputError("revision ids are positive", code="bad_revision")
        low, high = sorted((from_id, to_id))
        for rid in (low, high):
            if rid:
                self.get(rid)  # 404 for an unknown id
        added: dict[str, set[bytes]] = {}
        removed: dict[str, set[bytes]] = {}
        for _rev, g, plus, minus in self._changes(after=low, upto=high, graph=graph):
            a, r = added.setdefault(g, set()), removed.setdefault(g, set())
            for line in minus:
                if line in a:
                    a.discard(line)
                else:
                    r.add(line)
            for line in plus:
                if line in r:
                    r.discard(line)
                else:
                    a.add(line)
        if from_id > to_id:
            added, removed = removed, added
        return Diff({g: v for g, v in added.items() if v}, {g: v for g, v in removed.items() if v})

    def changes_after(self, revision_id: int) -> list[tuple[int, str, list[bytes], list[bytes]]]:
        """Every revision after ``revision_id``, newest first (for undoing them)."""
        return list(reversed(self._changes(after=revision_id, upto=None, graph=None)))

    def _changes(
        self, *, after: int, upto: int | None, graph: str | None
    ) -> list[tuple[int, str, list[bytes], list[bytes]]]:
        clauses, params = ["id > %s"], [after]
        if upto is not None:
            clauses.append("id <= %s")
            params.append(upto)
        sql = f"SELECT id, graph, added_nt, removed_nt FROM revisions WHERE {' AND '.join(clauses)}"
        args: list[object] = list(params)
        if graph is not None:
            sql += " AND graph = %s"
            args.append(graph)
        with translate_errors("revision read"), self._pool.connection() as conn:
            rows = conn.execute(sql + " ORDER BY id", args).fetchall()
        return [(rid, g, _unpack(a), _unpack(r)) for rid, g, a, r in rows]
