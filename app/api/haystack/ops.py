"""The Haystack operations over TwinGraph's graph and telemetry (docHaystack/Ops).

Each op takes the request grid and the caller and returns the response grid; the router
does HTTP, formats and authentication. Ops that change state answer only to POST.
"""

from __future__ import annotations

import datetime as dt
import socket
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from app import __version__
from app.api.haystack import history
from app.api.haystack.auth import HaystackAuth
from app.api.haystack.filter import matches, parse_filter, tag_names
from app.api.haystack.view import Entity, HaystackView, ViewCache
from app.api.haystack.watches import WatchRegistry
from app.domain.telemetry import Reading
from app.errors import InvalidInputError, NotFoundError, UnavailableError
from app.platform import Platform
from app.security.tokens import Principal, Scope
from app.telemetry.readings import BucketRow, TelemetryStore
from ingest.haystack.values import MARKER, DateTime, Grid, HValue, Number, Record, Ref
from ingest.haystack.writers import make_grid, zinc_scalar

#: Raw readings one hisRead answers per point at most; more needs an interval.
MAX_HIS_ROWS = 1_000_000
_LIVE_TAGS = frozenset({"curVal", "curStatus"})


@dataclass(frozen=True, slots=True)
class Op:
    name: str
    summary: str
    scope: Scope | None
    post_only: bool
    run: Callable[[Grid, Principal | None], Grid]


class HaystackService:
    def __init__(self, platform: Platform, auth: HaystackAuth) -> None:
        self.platform = platform
        self.auth = auth
        self.view = ViewCache(
            platform.store,
            platform.points,
            platform.models.hierarchy,
            version=lambda: platform.models.version,
            max_age_s=None if platform.store.mode == "embedded" else 5.0,
        )
        self.watches = WatchRegistry()
        self.booted = dt.datetime.now(dt.UTC)
        self.ops: dict[str, Op] = {
            op.name: op
            for op in (
                Op("about", "Summary information for the server", Scope.READ, False, self.about),
                Op("ops", "Operations supported by the server", Scope.READ, False, self.ops_),
                Op(
                    "formats",
                    "Grid formats supported by the server",
                    Scope.READ,
                    False,
                    self.formats,
                ),
                Op("read", "Read entities by filter or by id", Scope.READ, False, self.read),
                Op("nav", "Navigate sites, equipment and points", Scope.READ, False, self.nav),
                Op(
                    "hisRead",
                    "Read a point's history (with rollups)",
                    Scope.READ,
                    False,
                    self.his_read,
                ),
                Op("hisWrite", "Write history to points", Scope.WRITE, True, self.his_write),
                Op("watchSub", "Open or extend a watch", Scope.READ, True, self.watch_sub),
                Op("watchPoll", "Poll a watch for changes", Scope.READ, True, self.watch_poll),
                Op(
                    "watchUnsub",
                    "Close a watch or drop entities from it",
                    Scope.READ,
                    True,
                    self.watch_unsub,
                ),
                Op("close", "Close the session (revoke its auth token)", None, True, self.close),
            )
        }

    # -- helpers ---------------------------------------------------------------------------

    def _telemetry(self) -> TelemetryStore:
        if self.platform.telemetry is None:
            raise UnavailableError("Telemetry is not available on this server", code="no_telemetry")
        return self.platform.telemetry

    def _live(self, entities: Iterable[Entity]) -> list[Record]:
        """Records as served: tags plus ``curVal``/``curStatus`` from the latest reading."""
        entities = list(entities)
        points = [e.point for e in entities if e.point is not None]
        latest: dict[uuid.UUID, Reading] = {}
        if points and self.platform.telemetry is not None:
            latest = self.platform.telemetry.latest(points=points)
        out: list[Record] = []
        for e in entities:
            record = dict(e.tags)
            reading = latest.get(e.point) if e.point is not None else None
            if reading is not None:
                record["curVal"] = history.to_haystack(reading.value, e.unit)
                record["curStatus"] = "ok"
            out.append(record)
        return out

    def _entity(self, view: HaystackView, value: HValue, where: str) -> Entity:
        if not isinstance(value, Ref):
            raise InvalidInputError(f"{where}: 'id' must be a ref (@id), not {value!r}")
        entity = view.by_id.get(value.id)
        if entity is None:
            raise NotFoundError(f"{where}: unknown id @{value.id}", code="haystack_unknown_id")
        return entity

    @staticmethod
    def _ref(entity: Entity) -> Ref:
        dis = entity.tags.get("dis")
        return Ref(entity.id, dis if isinstance(dis, str) else None)

    # -- about, ops, formats -----------------------------------------------------------------

    def about(self, req: Grid, who: Principal | None) -> Grid:
        now = dt.datetime.now(dt.UTC)
        row: Record = {
            "haystackVersion": "4.0",
            "tz": "UTC",
            "serverName": socket.gethostname(),
            "serverTime": DateTime(now, "UTC"),
            "serverBootTime": DateTime(self.booted, "UTC"),
            "productName": "TwinGraph",
            "productUri": "urn:twingraph",
            "productVersion": __version__,
            "moduleName": "twingraph.haystack",
            "moduleVersion": __version__,
            "vendorName": "TwinGraph",
        }
        if who is not None:
            row["userName"] = who.label or who.token_id
        return make_grid([row], columns=list(row))

    def ops_(self, req: Grid, who: Principal | None) -> Grid:
        rows: list[Record] = [{"name": op.name, "summary": op.summary} for op in self.ops.values()]
        return make_grid(rows, columns=["name", "summary"])

    def formats(self, req: Grid, who: Principal | None) -> Grid:
        rows: list[Record] = [
            {"mime": mime, "receive": MARKER, "send": MARKER}
            for mime in ("text/zinc", "application/json", "application/json;v=3")
        ]
        return make_grid(rows, columns=["mime", "receive", "send"])

    # -- read, nav -----------------------------------------------------------------------

    def read(self, req: Grid, who: Principal | None) -> Grid:
        view = self.view.current()
        if req.rows and "id" in req.rows[0]:
            entities: list[Entity | None] = []
            for i, row in enumerate(req.rows):
                rid = row.get("id")
                if not isinstance(rid, Ref):
                    raise InvalidInputError(f"read row {i}: 'id' must be a ref, not {rid!r}")
                entities.append(view.by_id.get(rid.id))
            found = iter(self._live(e for e in entities if e is not None))
            rows = [next(found) if e is not None else {} for e in entities]
            return make_grid(rows)
        args = req.rows[0] if req.rows else {}
        text = args.get("filter")
        if not isinstance(text, str):
            raise InvalidInputError("read needs a 'filter' (Str) or rows of 'id' refs")
        node = parse_filter(text)
        limit = args.get("limit")
        cap: int | None = None
        if isinstance(limit, Number):
            cap = max(0, int(limit.value))
        elif limit is not None:
            raise InvalidInputError(f"read 'limit' must be a number, not {limit!r}")
        live = bool(tag_names(node) & _LIVE_TAGS)
        candidates = view.entities
        records = self._live(candidates) if live else [e.tags for e in candidates]
        by_id = {e.id: r for e, r in zip(candidates, records, strict=True)}
        picked: list[Entity] = []
        for e, record in zip(candidates, records, strict=True):
            if cap is not None and len(picked) >= cap:
                break
            if matches(node, record, by_id.get):
                picked.append(e)
        meta: Record = {}
        if cap is not None and len(picked) >= cap:
            meta["limit"] = Number(float(cap))
        return make_grid(self._live(picked), meta)

    def nav(self, req: Grid, who: Principal | None) -> Grid:
        view = self.view.current()
        args = req.rows[0] if req.rows else {}
        nav_id = args.get("navId")
        if isinstance(nav_id, Ref):
            nav_id = nav_id.id
        if nav_id is not None and not isinstance(nav_id, str):
            raise InvalidInputError(f"nav 'navId' must be a ref or string, not {nav_id!r}")

        def ref_to(e: Entity, tag: str) -> str | None:
            val = e.tags.get(tag)
            return val.id if isinstance(val, Ref) else None

        if not nav_id:
            children = [e for e in view.entities if e.kind == "site"]
        else:
            parent = view.by_id.get(nav_id)
            if parent is None:
                raise NotFoundError(f"nav: unknown navId {nav_id!r}", code="haystack_unknown_id")
            if parent.kind == "site":
                children = [
                    e
                    for e in view.entities
                    if e.kind == "equip"
                    and ref_to(e, "siteRef") == parent.id
                    and ref_to(e, "equipRef") is None
                ]
            elif parent.kind == "equip":
                children = [
                    e
                    for e in view.entities
                    if (e.kind == "point" or e.kind == "equip")
                    and ref_to(e, "equipRef") == parent.id
                ]
            else:
                children = []
        rows = self._live(children)
        for e, row in zip(children, rows, strict=True):
            if e.kind in ("site", "equip"):
                row["navId"] = e.id
        return make_grid(rows)

    # -- history -------------------------------------------------------------------------

    def his_read(self, req: Grid, who: Principal | None) -> Grid:
        if not req.rows:
            raise InvalidInputError("hisRead needs rows with 'id' (and 'range')")
        view = self.view.current()
        first = req.rows[0]
        batch = "range" in req.meta or len(req.rows) > 1
        text = first.get("range", req.meta.get("range"))
        if not isinstance(text, str | dt.date | DateTime):
            raise InvalidInputError(
                "hisRead needs a 'range' (today, yesterday, dates or date-times)"
            )
        range_text = text if isinstance(text, str) else zinc_scalar(text)
        interval_arg = first.get("interval", req.meta.get("interval"))
        rollup_arg = first.get("rollup", req.meta.get("rollup"))
        interval = history.parse_interval(interval_arg) if interval_arg is not None else None
        if rollup_arg is not None and interval is None:
            raise InvalidInputError("hisRead 'rollup' needs an 'interval'")
        points = [
            self._entity(view, r.get("id"), f"hisRead row {i}") for i, r in enumerate(req.rows)
        ]
        store = self._telemetry()
        columns: list[tuple[Entity, dict[dt.datetime, HValue]]] = []
        spans: list[history.Span] = []
        for p in points:
            if p.point is None:
                raise InvalidInputError(f"hisRead: @{p.id} is not a point with history")
            zone, zone_name = history.point_zone(p.tags)
            span = history.parse_range(range_text, zone)
            spans.append(span)
            values: dict[dt.datetime, HValue] = {}
            if interval is None:
                raw = store.range(
                    point=p.point, start=span.start, end=span.end, limit=MAX_HIS_ROWS + 1
                )
                if len(raw) > MAX_HIS_ROWS:
                    raise InvalidInputError(
                        f"hisRead: more than {MAX_HIS_ROWS} readings for @{p.id}; "
                        "ask for a shorter range or an interval with a rollup",
                        code="haystack_too_many_rows",
                    )
                for r in raw:
                    values[r.time] = history.to_haystack(r.value, p.unit)
            else:
                agg = history.parse_rollup(rollup_arg, p.tags)
                buckets: list[BucketRow] = store.range(
                    point=p.point, start=span.start, end=span.end, bucket=interval, agg=agg
                )
                unit = None if agg == "count" else p.unit
                for b in buckets:
                    values[b.start] = history.to_haystack(b.value, unit)
            columns.append((p, values))
        zone, zone_name = history.point_zone(points[0].tags)
        meta: Record = {
            "hisStart": history.stamp(spans[0].start, zone, zone_name),
            "hisEnd": history.stamp(spans[0].end, zone, zone_name),
        }
        if interval is not None:
            meta["interval"] = Number(interval.total_seconds() / 60, "min")
            meta["rollup"] = str(history.parse_rollup(rollup_arg, points[0].tags))
        if not batch:
            p, values = columns[0]
            meta = {"id": self._ref(p), **meta}
            rows: list[Record] = [
                {"ts": history.stamp(t, zone, zone_name), "val": v}
                for t, v in sorted(values.items())
            ]
            return make_grid(rows, meta, columns=["ts", "val"])
        stamps = sorted({t for _, values in columns for t in values})
        names = [f"v{i}" for i in range(len(columns))]
        rows = []
        for t in stamps:
            row: Record = {"ts": history.stamp(t, zone, zone_name)}
            for name, (_p, values) in zip(names, columns, strict=True):
                if t in values:
                    row[name] = values[t]
            rows.append(row)
        column_meta: dict[str, Record] = {
            name: {"id": self._ref(p)} for name, (p, _v) in zip(names, columns, strict=True)
        }
        return make_grid(rows, meta, columns=["ts", *names], column_meta=column_meta)

    def his_write(self, req: Grid, who: Principal | None) -> Grid:
        view = self.view.current()
        targets: list[tuple[str, Entity]] = []
        if "id" in req.meta:
            targets.append(("val", self._entity(view, req.meta["id"], "hisWrite meta")))
        else:
            for col in req.columns:
                meta = req.column_meta.get(col, {})
                if col != "ts" and "id" in meta:
                    targets.append((col, self._entity(view, meta["id"], f"hisWrite column {col}")))
        if not targets:
            raise InvalidInputError(
                "hisWrite needs the point in the grid meta ('id') or per column (column meta 'id')"
            )
        readings: list[Reading] = []
        for col, p in targets:
            if p.point is None:
                raise InvalidInputError(f"hisWrite: @{p.id} is not a point with history")
            for i, row in enumerate(req.rows):
                if col not in row:
                    continue
                where = f"hisWrite row {i}"
                when = history.timestamp(row.get("ts"), where)
                value = history.from_haystack(row[col], p.unit, where)
                readings.append(Reading(point=p.point, time=when, value=value))
        result = self._telemetry().write(readings=readings)
        return make_grid(
            [],
            {
                "written": Number(float(result.inserted)),
                "duplicates": Number(float(result.duplicates)),
            },
            columns=["empty"],
        )

    # -- watches ---------------------------------------------------------------------------

    @staticmethod
    def _owner(who: Principal | None) -> str:
        return who.token_id if who is not None else "anonymous"

    def _watch_rows(
        self, view: HaystackView, ids: list[str], seen: dict[str, str | None], *, all_: bool
    ) -> list[Record]:
        entities = [view.by_id.get(i) for i in ids]
        present = [e for e in entities if e is not None]
        records = dict(zip((e.id for e in present), self._live(present), strict=True))
        out: list[Record] = []
        for hid in ids:
            record = records.get(hid)
            fingerprint = zinc_scalar(dict(sorted(record.items()))) if record is not None else None
            if all_ or fingerprint != seen.get(hid):
                out.append(record if record is not None else {"id": Ref(hid)})
            seen[hid] = fingerprint
        return out

    def watch_sub(self, req: Grid, who: Principal | None) -> Grid:
        view = self.view.current()
        ids = []
        for i, row in enumerate(req.rows):
            rid = row.get("id")
            if not isinstance(rid, Ref):
                raise InvalidInputError(f"watchSub row {i}: 'id' must be a ref, not {rid!r}")
            ids.append(rid.id)
        dis, wid, lease_arg = (
            req.meta.get("watchDis"),
            req.meta.get("watchId"),
            req.meta.get("lease"),
        )
        if wid is None and not isinstance(dis, str):
            raise InvalidInputError("watchSub needs 'watchDis' (new watch) or 'watchId' (existing)")
        if wid is not None and not isinstance(wid, str):
            raise InvalidInputError(f"watchSub 'watchId' must be a string, not {wid!r}")
        lease = history.parse_interval(lease_arg) if lease_arg is not None else None
        watch = self.watches.subscribe(
            owner=self._owner(who),
            dis=dis if isinstance(dis, str) else None,
            watch_id=wid,
            ids=ids,
            lease=lease,
        )
        rows = self._watch_rows(view, ids, watch.seen, all_=True)
        meta: Record = {"watchId": watch.id, "lease": Number(watch.lease.total_seconds(), "s")}
        return make_grid(rows, meta)

    def watch_poll(self, req: Grid, who: Principal | None) -> Grid:
        wid = req.meta.get("watchId")
        if not isinstance(wid, str):
            raise InvalidInputError("watchPoll needs 'watchId' in the grid meta")
        watch = self.watches.poll(owner=self._owner(who), watch_id=wid)
        view = self.view.current()
        refresh = "refresh" in req.meta
        rows = self._watch_rows(view, list(watch.seen), watch.seen, all_=refresh)
        return make_grid(rows, {"watchId": watch.id})

    def watch_unsub(self, req: Grid, who: Principal | None) -> Grid:
        wid = req.meta.get("watchId")
        if not isinstance(wid, str):
            raise InvalidInputError("watchUnsub needs 'watchId' in the grid meta")
        ids: list[str] | None = None
        if "close" not in req.meta:
            ids = [r["id"].id for r in req.rows if isinstance(r.get("id"), Ref)]  # type: ignore[union-attr]
        self.watches.unsubscribe(owner=self._owner(who), watch_id=wid, ids=ids)
        return make_grid([])

    def close(self, req: Grid, who: Principal | None) -> Grid:
        self.auth.close(who)
        return make_grid([])
