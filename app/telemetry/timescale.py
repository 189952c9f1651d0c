"""The TimescaleDB path, isolated: everything that only exists when the extension does.

Written against TimescaleDB's documented 2.13+ API (``by_range``) and the compression API
(``timescaledb.compress`` / ``add_compression_policy``), which 2.18+ still supports beside
its columnstore renames. TimescaleDB is not installable on the development machine, so the
SQL here is unit tested as text (``tests/unit/test_timescale_sql.py``) and never ran in CI.

What ``apply`` sets up on ``readings`` (idempotent, safe to run at every start):

* the extension, and ``readings`` as a hypertable partitioned by ``time`` (existing rows
  migrated; no default ``time`` index, the (point, time) primary key serves our queries);
* continuous aggregates ``readings_1m``/``_1h``/``_1d`` with real-time aggregation on
  (``materialized_only = false``: new data shows up before it is materialized), storing
  sums and counts (not averages) so coarser buckets can be re-aggregated exactly, and
  ``first``/``last`` of the value triple (num, txt, kind) for every value type;
* a refresh policy per aggregate over ``refresh_window``; late data older than that window
  is refreshed by the write path (``refresh_sql``), so the aggregates stay exact;
* compression of chunks older than ``compress_after`` (segment by point, newest first);
* an optional retention policy (``retention``), removed again when unset.

Nothing here runs on plain PostgreSQL: ``apply`` returns early unless ``Features`` say the
extension is available, and every feature is guarded by what the installed version offers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg

from app.telemetry.db import Features

TABLE = "readings"


@dataclass(frozen=True, slots=True)
class Cagg:
    name: str
    width: timedelta
    schedule: timedelta


CAGGS: tuple[Cagg, ...] = (
    Cagg("readings_1m", timedelta(minutes=1), timedelta(minutes=1)),
    Cagg("readings_1h", timedelta(hours=1), timedelta(minutes=10)),
    Cagg("readings_1d", timedelta(days=1), timedelta(hours=1)),
)


DEFAULT_REFRESH_WINDOW = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class TimescaleSettings:
    enabled: bool = True
    chunk_interval: timedelta = timedelta(days=1)
    #: None: never compress.
    compress_after: timedelta | None = timedelta(days=7)
    #: None: keep raw readings forever. Aggregates keep their rows after raw chunks are
    #: dropped, as long as the refresh window stays inside the retention period.
    retention: timedelta | None = None
    #: How far back the refresh policies look for changes (late data).
    refresh_window: timedelta = DEFAULT_REFRESH_WINDOW
    continuous_aggregates: bool = True


def interval(td: timedelta) -> str:
    """A PostgreSQL interval literal, exact to the microsecond."""
    micros = (td.days * 86_400 + td.seconds) * 1_000_000 + td.microseconds
    if micros <= 0:
        raise ValueError(f"interval must be positive, got {td}")
    if micros % 1_000_000 == 0:
        return f"INTERVAL '{micros // 1_000_000} seconds'"
    return f"INTERVAL '{micros} microseconds'"


def extension_sql() -> str:
    return "CREATE EXTENSION IF NOT EXISTS timescaledb"


def hypertable_sql(chunk_interval: timedelta) -> str:
    return (
        f"SELECT create_hypertable('{TABLE}', by_range('time', {interval(chunk_interval)}), "
        "create_default_indexes => FALSE, if_not_exists => TRUE, migrate_data => TRUE)"
    )


def cagg_sql(cagg: Cagg) -> str:
    """The aggregate keeps what re-aggregation needs: counts, sums, min/max, first/last."""
    return f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {cagg.name}
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT point,
       time_bucket({interval(cagg.width)}, time) AS bucket,
       count(*) AS n,
       count(num) AS n_num,
       sum(num) AS sum_num,
       min(num) AS min_num,
       max(num) AS max_num,
       first(num, time) AS first_num,
       first(txt, time) AS first_txt,
       first(kind, time) AS first_kind,
       last(num, time) AS last_num,
       last(txt, time) AS last_txt,
       last(kind, time) AS last_kind
FROM {TABLE}
GROUP BY point, bucket
WITH DATA"""


def cagg_policy_sql(cagg: Cagg, settings: TimescaleSettings) -> str:
    start = max(settings.refresh_window, cagg.width * 3)
    if settings.retention is not None:
        # Refreshing a region whose raw chunks were dropped would empty the aggregate there.
        start = min(start, max(settings.retention - cagg.width, cagg.width * 3))
    return (
        f"SELECT add_continuous_aggregate_policy('{cagg.name}', "
        f"start_offset => {interval(start)}, end_offset => {interval(cagg.width)}, "
        f"schedule_interval => {interval(cagg.schedule)}, if_not_exists => TRUE)"
    )


def compression_sql() -> str:
    return (
        f"ALTER TABLE {TABLE} SET (timescaledb.compress, "
        "timescaledb.compress_segmentby = 'point', timescaledb.compress_orderby = 'time DESC')"
    )


def compression_policy_sql(compress_after: timedelta | None) -> list[str]:
    """Replace the policy (``if_not_exists`` alone would keep an old interval)."""
    statements = [f"SELECT remove_compression_policy('{TABLE}', if_exists => TRUE)"]
    if compress_after is not None:
        statements.append(
            f"SELECT add_compression_policy('{TABLE}', "
            f"compress_after => {interval(compress_after)}, if_not_exists => TRUE)"
        )
    return statements


def retention_sql(retention: timedelta | None) -> list[str]:
    statements = [f"SELECT remove_retention_policy('{TABLE}', if_exists => TRUE)"]
    if retention is not None:
        statements.append(
            f"SELECT add_retention_policy('{TABLE}', drop_after => {interval(retention)}, "
            "if_not_exists => TRUE)"
        )
    return statements


def refresh_sql(cagg: Cagg) -> str:
    """Refresh one aggregate over [%s, %s); must run outside a transaction block."""
    return f"CALL refresh_continuous_aggregate('{cagg.name}', %s, %s)"


def plan(features: Features, settings: TimescaleSettings, *, compressed: bool) -> list[str]:
    """The statements ``apply`` runs, in order, given what the server offers.

    ``compressed``: compression is already enabled on the hypertable (altering its
    settings again fails once chunks are compressed, so it is set only once).
    """
    if not (settings.enabled and features.timescaledb_available):
        return []
    statements = [extension_sql()]
    # Features come from before the extension was created: judge by the version offered.
    if features.timescaledb_version_tuple < (2, 13):
        return statements
    statements.append(hypertable_sql(settings.chunk_interval))
    community = features.timescaledb_license != "apache"
    if community and settings.continuous_aggregates:
        for cagg in CAGGS:
            statements += [cagg_sql(cagg), cagg_policy_sql(cagg, settings)]
    if community:
        if not compressed and settings.compress_after is not None:
            statements.append(compression_sql())
        if compressed or settings.compress_after is not None:
            statements += compression_policy_sql(settings.compress_after)
        statements += retention_sql(settings.retention)
    return statements


def compression_enabled(conn: psycopg.Connection[Any]) -> bool:
    if conn.execute("SELECT to_regclass('timescaledb_information.hypertables')").fetchone() in (
        None,
        (None,),
    ):
        return False
    row = conn.execute(
        "SELECT compression_enabled FROM timescaledb_information.hypertables "
        "WHERE hypertable_name = %s",
        (TABLE,),
    ).fetchone()
    return bool(row and row[0])


def apply(conn: psycopg.Connection[Any], features: Features, settings: TimescaleSettings) -> int:
    """Run ``plan`` on a dedicated connection in autocommit mode; return statements run.

    Autocommit because creating a continuous aggregate ``WITH DATA`` (materialising the
    history already there) cannot run inside a transaction block.
    """
    if not (settings.enabled and features.timescaledb_available):
        return 0
    previous = conn.autocommit
    conn.autocommit = True
    try:
        conn.execute(extension_sql())
        statements = plan(features, settings, compressed=compression_enabled(conn))
        for statement in statements[1:]:
            conn.execute(statement.encode())
        return len(statements)
    finally:
        conn.autocommit = previous


def installed_caggs(conn: psycopg.Connection[Any]) -> tuple[Cagg, ...]:
    """The aggregates of ``CAGGS`` that exist on this server (none on plain PostgreSQL)."""
    if conn.execute(
        "SELECT to_regclass('timescaledb_information.continuous_aggregates')"
    ).fetchone() in (None, (None,)):
        return ()
    names = {
        name
        for (name,) in conn.execute(
            "SELECT view_name FROM timescaledb_information.continuous_aggregates "
            "WHERE hypertable_name = %s",
            (TABLE,),
        ).fetchall()
    }
    return tuple(c for c in CAGGS if c.name in names)


#: Re-aggregation of cagg rows into a coarser bucket: (select expressions, HAVING).
CAGG_AGG: dict[str, tuple[str, str]] = {
    "avg": ("sum(sum_num) / sum(n_num), NULL::text, 1::smallint", "sum(n_num) > 0"),
    "min": ("min(min_num), NULL::text, 1::smallint", "sum(n_num) > 0"),
    "max": ("max(max_num), NULL::text, 1::smallint", "sum(n_num) > 0"),
    "sum": ("sum(sum_num), NULL::text, 1::smallint", "sum(n_num) > 0"),
    "count": ("sum(n)::double precision, NULL::text, 2::smallint", "sum(n) > 0"),
    "first": (
        "first(first_num, bucket), first(first_txt, bucket), first(first_kind, bucket)",
        "true",
    ),
    "last": (
        "last(last_num, bucket), last(last_txt, bucket), last(last_kind, bucket)",
        "true",
    ),
}


def cagg_query(cagg: Cagg, agg: str) -> str:
    """Bucketed aggregate from a continuous aggregate; params: bucket, origin, points, start, end.

    Exact when the bucket is a multiple of ``cagg.width`` and start/end are aligned to it
    (the caller checks), because every cagg bucket then falls inside one result bucket.
    """
    select, having = CAGG_AGG[agg]
    return f"""SELECT point, time_bucket(%(bucket)s, bucket, origin => %(origin)s) AS b, {select}
FROM {cagg.name}
WHERE point = ANY(%(points)s) AND bucket >= %(start)s AND bucket < %(end)s
GROUP BY point, b
HAVING {having}
ORDER BY point, b"""
