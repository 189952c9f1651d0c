"""Haystack time-zone names <-> IANA zones.

Haystack names a zone by the last part of its IANA name (``New_York`` for
``America/New_York``), ``UTC`` for UTC and ``GMT+5`` style names for the ``Etc/GMT+5``
zones. The table is built once from the zones the system knows.
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

#: Regions preferred when two IANA zones share a city name.
_REGIONS = ("America", "Europe", "Asia", "Australia", "Africa", "Pacific", "Atlantic", "Indian")


def haystack_name(iana: str) -> str:
    if iana in ("UTC", "Etc/UTC", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu"):
        return "UTC"
    return iana.rsplit("/", 1)[-1]


@cache
def _table() -> dict[str, str]:
    def rank(name: str) -> tuple[int, str]:
        region = name.split("/", 1)[0]
        return (_REGIONS.index(region) if region in _REGIONS else len(_REGIONS), name)

    out: dict[str, str] = {}
    for iana in sorted(available_timezones(), key=rank):
        out.setdefault(haystack_name(iana), iana)
    out["UTC"] = "UTC"
    return out


def zone(name: str | None) -> dt.tzinfo | None:
    """The zone a Haystack (or IANA) time-zone name stands for, or None if unknown."""
    if not name:
        return None
    if name == "UTC":
        return dt.UTC
    iana = _table().get(name) or (name if "/" in name and name in available_timezones() else None)
    return ZoneInfo(iana) if iana else None


def name_of(value: dt.datetime) -> str:
    """The Haystack zone name of an aware datetime (UTC when the zone has no IANA key)."""
    tz = value.tzinfo
    key = getattr(tz, "key", None)
    if isinstance(key, str):
        return haystack_name(key)
    return "UTC"
