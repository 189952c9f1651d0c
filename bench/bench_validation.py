"""Benchmark: TwinGraph's SHACL validator against brickschema's and pyshacl's.

Run with ``python -m bench.bench_validation [--pyshacl] [--sizes 5000,50000]``.

Every figure comes from the same run on the same synthetic Brick 1.5 building, so the
ratios are measured, not quoted. The building generator lives here (not in the demo
generator) so the benchmark does not move when the demo does.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

import pyoxigraph as ox

from app.domain.iris import BRICK, RDF_TYPE, RDFS, REC, REF, UNIT

T = TypeVar("T")


#: (class, unit) of the points every VAV carries: a typical VAV box in Brick 1.5.
VAV_POINTS: tuple[tuple[str, str], ...] = (
    ("Supply_Air_Temperature_Sensor", "DEG_C"),
    ("Zone_Air_Temperature_Sensor", "DEG_C"),
    ("Supply_Air_Flow_Sensor", "M3-PER-SEC"),
    ("Target_Zone_Air_Temperature_Setpoint", "DEG_C"),
    ("Damper_Position_Command", "PERCENT"),
)
AHU_POINTS: tuple[tuple[str, str], ...] = (
    ("Supply_Air_Temperature_Sensor", "DEG_C"),
    ("Return_Air_Temperature_Sensor", "DEG_C"),
    ("Outside_Air_Temperature_Sensor", "DEG_C"),
    ("Supply_Air_Static_Pressure_Sensor", "PA"),
    ("Fan_Speed_Command", "PERCENT"),
)


class _Builder:
    """Accumulates triples for one synthetic building; IRIs are deterministic."""

    def __init__(self, base: str, seed: int = 0) -> None:
        self.base = base
        self.triples: list[ox.Triple] = []
        self._uuid_seed = seed

    def node(self, local: str) -> ox.NamedNode:
        return ox.NamedNode(self.base + local)

    def add(
        self, s: ox.NamedNode | ox.BlankNode, p: str, o: ox.NamedNode | ox.BlankNode | ox.Literal
    ) -> None:
        self.triples.append(ox.Triple(s, ox.NamedNode(p), o))

    def typed(self, local: str, cls: str, label: str | None = None) -> ox.NamedNode:
        n = self.node(local)
        self.add(n, RDF_TYPE, ox.NamedNode(cls))
        self.add(n, RDFS + "label", ox.Literal(label or local))
        return n

    def point(self, owner: ox.NamedNode, local: str, cls: str, unit: str) -> ox.NamedNode:
        p = self.typed(local, BRICK + cls)
        self.add(p, BRICK + "hasUnit", ox.NamedNode(UNIT + unit))
        self.add(owner, BRICK + "hasPoint", p)
        self.add(p, BRICK + "isPointOf", owner)
        ref = ox.BlankNode()
        self.add(p, REF + "hasExternalReference", ref)
        self.add(ref, RDF_TYPE, ox.NamedNode(REF + "TimeseriesReference"))
        self._uuid_seed += 1
        ts_id = str(uuid.UUID(int=self._uuid_seed))
        self.add(ref, REF + "hasTimeseriesId", ox.Literal(ts_id))
        return p

    def vav(self, local: str, ahu: ox.NamedNode, zone: ox.NamedNode) -> ox.NamedNode:
        """A VAV with its five points, fed by ``ahu``, feeding ``zone`` (~48 triples)."""
        v = self.typed(local, BRICK + "VAV")
        self.add(ahu, BRICK + "feeds", v)
        self.add(v, BRICK + "feeds", zone)
        for cls, unit in VAV_POINTS:
            self.point(v, f"{local}.{cls}", cls, unit)
        return v


def synthetic_building(target_triples: int, *, base: str = "urn:bench:b1/") -> list[ox.Triple]:
    """A Brick 1.5 / REC building of roughly ``target_triples`` triples.

    One rec:Building with levels; per level one AHU (five points), rooms, HVAC zones and
    VAVs (five points each, with units and time-series references). Uses the REC classes
    for spaces (no deprecation warnings), except one brick:HVAC_Zone per level, which is
    deprecated in 1.5 and so yields a warning per level, as real models do.
    """
    b = _Builder(base)
    building = b.typed("building", REC + "Building", "Synthetic building")
    level_no = 0
    while len(b.triples) < target_triples:
        level_no += 1
        lvl = b.typed(f"level{level_no}", REC + "Level")
        b.add(building, REC + "hasPart", lvl)
        b.add(lvl, REC + "isPartOf", building)
        ahu = b.typed(f"ahu{level_no}", BRICK + "AHU")
        for cls, unit in AHU_POINTS:
            b.point(ahu, f"ahu{level_no}.{cls}", cls, unit)
        legacy = b.typed(f"level{level_no}.legacy_zone", BRICK + "HVAC_Zone")
        b.add(legacy, BRICK + "isPartOf", lvl)
        for room_no in range(1, 21):
            if len(b.triples) >= target_triples:
                break
            tag = f"l{level_no}r{room_no}"
            room = b.typed(f"room.{tag}", REC + "Room")
            b.add(room, REC + "isPartOf", lvl)
            zone = b.typed(f"zone.{tag}", REC + "HVACZone")
            b.add(zone, REC + "hasPart", room)
            vav = b.vav(f"vav.{tag}", ahu, zone)
            b.add(vav, BRICK + "hasLocation", room)
    return b.triples


def vav_delta(
    index: int,
    *,
    base: str = "urn:bench:b1/",
    ahu_local: str = "ahu1",
    zone_local: str | None = None,
) -> list[ox.Triple]:
    """The triples of one new VAV with five points, attached to an existing AHU."""
    b = _Builder(base, seed=10_000_000 + index * 10)
    ahu = b.node(ahu_local)
    zone = b.typed(zone_local or f"zone.new{index}", REC + "HVACZone")
    b.vav(f"vav.new{index}", ahu, zone)
    return b.triples


def _timed(fn: Callable[[], T], repeat: int = 1) -> tuple[float, T]:
    """Median wall time of ``repeat`` calls, and the last result."""
    times: list[float] = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def _to_rdflib_ntriples(triples: Sequence[ox.Triple]) -> bytes:
    return ox.serialize(triples, format=ox.RdfFormat.N_TRIPLES) or b""


def run(
    sizes: Sequence[int] = (5_000, 50_000), *, with_pyshacl: bool = False
) -> list[dict[str, object]]:
    """Measure and print full-model and delta validation; returns one dict per size."""
    import brickschema

    from app.graph.validation import ShaclValidator, default_ontology_files

    t0 = time.perf_counter()
    validator = ShaclValidator.from_files(default_ontology_files())
    startup = time.perf_counter() - t0
    print(f"from_files (start-up, once): {startup:.2f} s")
    rows: list[dict[str, object]] = []
    for size in sizes:
        model = synthetic_building(size)
        row: dict[str, object] = {"size": len(model), "startup_s": round(startup, 3)}
        ours_s, report = _timed(partial(validator.validate, model), repeat=3)
        row["ours_s"] = round(ours_s, 3)
        row["ours_conforms"] = report.conforms
        row["ours_results"] = len(report.results)

        # Delta: one VAV with five points added to the model.
        added = vav_delta(1)
        after = ox.Store()
        after.extend(ox.Quad(t.subject, t.predicate, t.object) for t in (*model, *added))
        fetch = _store_fetch(after)
        delta = partial(validator.validate_delta, added=added, removed=(), fetch=fetch)
        delta_s, dreport = _timed(delta, repeat=5)
        row["delta_s"] = round(delta_s, 4)
        row["delta_conforms"] = dreport.conforms
        row["delta_foci"] = dreport.focus_nodes_checked

        nt = _to_rdflib_ntriples(model)
        g = brickschema.Graph(load_brick=True)
        g.parse(data=nt, format="nt")
        bs_s, (bs_conforms, _, _) = _timed(g.validate)
        row["brickschema_s"] = round(bs_s, 3)
        row["brickschema_conforms"] = bs_conforms
        row["ratio_vs_brickschema"] = round(bs_s / ours_s, 2)
        if with_pyshacl and size <= 5_000:
            row["pyshacl_s"] = round(_pyshacl_seconds(nt), 2)
        print(
            f"{row['size']:>7} triples: ours {ours_s:6.2f} s ({row['ours_results']} results, "
            f"conforms={row['ours_conforms']}) | brickschema.validate {bs_s:6.2f} s "
            f"(conforms={bs_conforms}) | ratio x{row['ratio_vs_brickschema']} | "
            f"delta (1 VAV + 5 points) {delta_s * 1000:.0f} ms, {row['delta_foci']} foci"
            + (f" | pyshacl {row['pyshacl_s']} s" if "pyshacl_s" in row else "")
        )
        rows.append(row)
    return rows


def _store_fetch(store: ox.Store) -> Callable[[Sequence[str]], Sequence[ox.Triple]]:
    """``fetch`` as a real caller would implement it: one pass over a pyoxigraph store."""

    def fetch(iris: Sequence[str]) -> list[ox.Triple]:
        out: list[ox.Triple] = []
        for iri in iris:
            node = ox.NamedNode(iri)
            out.extend(q.triple for q in store.quads_for_pattern(node, None, None))
            out.extend(q.triple for q in store.quads_for_pattern(None, None, node))
        return out

    return fetch


def _pyshacl_seconds(nt: bytes) -> float:
    """Plain pyshacl (no rules, no advanced features) on the full Brick shapes."""
    import brickschema
    import pyshacl
    import rdflib

    brick = Path(brickschema.__file__).parent / "ontologies" / "1.5" / "Brick.ttl"
    shapes = rdflib.Graph().parse(brick)
    data = rdflib.Graph().parse(data=nt, format="nt")
    t0 = time.perf_counter()
    pyshacl.validate(data, shacl_graph=shapes, ont_graph=shapes, advanced=False, inference="none")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="5000,50000")
    parser.add_argument("--pyshacl", action="store_true", help="also time plain pyshacl (5k only)")
    args = parser.parse_args()
    run(tuple(int(s) for s in args.sizes.split(",")), with_pyshacl=args.pyshacl)


if __name__ == "__main__":
    main()
