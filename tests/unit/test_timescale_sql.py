"""The TimescaleDB DDL as text: TimescaleDB cannot be installed here, so its SQL is pinned
against the documented API (2.13+ ``by_range``; compression and policy functions)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from app.telemetry import timescale
from app.telemetry.db import PLAIN_POSTGRES, Features
from app.telemetry.readings import ORIGIN, TelemetryStore

TS = Features("15.18", 150018, True, False, "2.17.2", None)


def test_interval_literals() -> None:
    assert timescale.interval(timedelta(minutes=1)) == "INTERVAL '60 seconds'"
    assert timescale.interval(timedelta(days=1)) == "INTERVAL '86400 seconds'"
    assert timescale.interval(timedelta(milliseconds=1500)) == "INTERVAL '1500000 microseconds'"
    with pytest.raises(ValueError):
        timescale.interval(timedelta(0))


def test_hypertable_uses_by_range_and_keeps_existing_rows() -> None:
    assert timescale.hypertable_sql(timedelta(days=1)) == (
        "SELECT create_hypertable('readings', by_range('time', INTERVAL '86400 seconds'), "
        "create_default_indexes => FALSE, if_not_exists => TRUE, migrate_data => TRUE)"
    )


def test_cagg_is_real_time_and_reaggregatable() -> None:
    sql = timescale.cagg_sql(timescale.CAGGS[1])
    assert sql.startswith("CREATE MATERIALIZED VIEW IF NOT EXISTS readings_1h\n")
    assert "timescaledb.continuous, timescaledb.materialized_only = false" in sql
    assert "time_bucket(INTERVAL '3600 seconds', time) AS bucket" in sql
    for column in (
        "count(*) AS n",
        "sum(num) AS sum_num",
        "count(num) AS n_num",
        "first(kind, time) AS first_kind",
        "last(txt, time) AS last_txt",
    ):
        assert column in sql
    assert "avg(" not in sql  # averages of averages would be wrong when re-bucketing
    assert sql.endswith("GROUP BY point, bucket\nWITH DATA")


def test_refresh_policy_offsets() -> None:
    settings = timescale.TimescaleSettings()
    assert timescale.cagg_policy_sql(timescale.CAGGS[0], settings) == (
        "SELECT add_continuous_aggregate_policy('readings_1m', "
        "start_offset => INTERVAL '2592000 seconds', end_offset => INTERVAL '60 seconds', "
        "schedule_interval => INTERVAL '60 seconds', if_not_exists => TRUE)"
    )
    # With retention, the refresh window must stay inside it (else dropped raw chunks
    # would wipe the aggregate on refresh).
    short = replace(settings, retention=timedelta(days=10))
    assert "start_offset => INTERVAL '777600 seconds'" in timescale.cagg_policy_sql(
        timescale.CAGGS[2], short
    )


def test_plan_on_plain_postgres_is_empty() -> None:
    assert timescale.plan(PLAIN_POSTGRES, timescale.TimescaleSettings(), compressed=False) == []
    disabled = timescale.TimescaleSettings(enabled=False)
    assert timescale.plan(TS, disabled, compressed=False) == []


def test_full_plan_order() -> None:
    settings = timescale.TimescaleSettings(retention=timedelta(days=365))
    plan = timescale.plan(TS, settings, compressed=False)
    assert plan[0] == "CREATE EXTENSION IF NOT EXISTS timescaledb"
    assert plan[1].startswith("SELECT create_hypertable(")
    caggs = [s for s in plan if s.startswith("CREATE MATERIALIZED VIEW")]
    assert [s.split()[6] for s in caggs] == ["readings_1m", "readings_1h", "readings_1d"]
    assert plan[-5:] == [
        "ALTER TABLE readings SET (timescaledb.compress, timescaledb.compress_segmentby = "
        "'point', timescaledb.compress_orderby = 'time DESC')",
        "SELECT remove_compression_policy('readings', if_exists => TRUE)",
        "SELECT add_compression_policy('readings', compress_after => "
        "INTERVAL '604800 seconds', if_not_exists => TRUE)",
        "SELECT remove_retention_policy('readings', if_exists => TRUE)",
        "SELECT add_retention_policy('readings', drop_after => INTERVAL '31536000 seconds', "
        "if_not_exists => TRUE)",
    ]
    assert len(plan) == 2 + 2 * 3 + 5


def test_plan_is_rerunnable() -> None:
    plan = timescale.plan(TS, timescale.TimescaleSettings(), compressed=True)
    assert not any(s.startswith("ALTER TABLE") for s in plan)  # fails on compressed chunks
    assert plan[-1] == "SELECT remove_retention_policy('readings', if_exists => TRUE)"


def test_apache_license_and_old_versions_get_less() -> None:
    apache = replace(TS, timescaledb_license="apache")
    plan = timescale.plan(apache, timescale.TimescaleSettings(), compressed=False)
    assert [s.split("(")[0] for s in plan] == [
        "CREATE EXTENSION IF NOT EXISTS timescaledb",
        "SELECT create_hypertable",
    ]
    old = replace(TS, timescaledb_version="2.11.0")
    assert timescale.plan(old, timescale.TimescaleSettings(), compressed=False) == [
        "CREATE EXTENSION IF NOT EXISTS timescaledb"
    ]


def test_cagg_query_reaggregates_sums_and_counts() -> None:
    avg = timescale.cagg_query(timescale.CAGGS[1], "avg")
    assert "sum(sum_num) / sum(n_num)" in avg and "FROM readings_1h" in avg
    assert "time_bucket(%(bucket)s, bucket, origin => %(origin)s)" in avg
    assert "HAVING sum(n_num) > 0" in avg
    assert "last(last_kind, bucket)" in timescale.cagg_query(timescale.CAGGS[0], "last")


class _NoPool:
    pass


def test_store_uses_a_cagg_only_when_exact() -> None:
    installed = replace(TS, timescaledb_installed=True, timescaledb_license="timescale")
    store = TelemetryStore(_NoPool(), installed, caggs=timescale.CAGGS)  # type: ignore[arg-type]
    day = datetime(2026, 1, 5, tzinfo=UTC)
    assert (day - ORIGIN) % timedelta(days=1) == timedelta(0)
    pick = store._cagg_for
    assert pick(timedelta(days=7), day, day + timedelta(days=14)) == timescale.CAGGS[2]
    assert pick(timedelta(hours=2), day, day + timedelta(days=1)) == timescale.CAGGS[1]
    # Start inside an hour: the 1 h aggregate would include readings before start.
    assert (
        pick(timedelta(hours=1), day + timedelta(minutes=30), day + timedelta(days=1))
        == (timescale.CAGGS[0])
    )
    assert pick(timedelta(seconds=90), day, day + timedelta(days=1)) is None
    assert pick(timedelta(minutes=1), day + timedelta(seconds=1), day + timedelta(days=1)) is None
    bucketed = store._sql(timedelta(seconds=90), "avg", None, day, day + timedelta(days=1))
    assert isinstance(bucketed, str) and "time_bucket(%(bucket)s, time" in bucketed
    plain = TelemetryStore(_NoPool(), PLAIN_POSTGRES)  # type: ignore[arg-type]
    assert "date_bin(" in str(plain._sql(timedelta(hours=1), "avg", None, day, day + timedelta(1)))
