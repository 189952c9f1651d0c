"""Haystack in -> Brick -> Haystack out keeps ids, tags and refs.

"Out" is the running server's /read (Zinc, Hayson and Haystack 3 JSON) for our own fixture
and Carytown, and the same view over a bare store for alpha (2k records, no server needed).
Every encoding of a source gives the same model, and re-ingesting it changes nothing.
"""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from pyoxigraph import BlankNode, NamedNode, Quad, RdfFormat, parse
from rich.console import Console

from app.api.haystack.view import ViewCache
from app.graph.embedded import EmbeddedStore
from app.graph.ontology import ClassHierarchy
from app.platform import Platform
from app.points import PointDirectory
from ingest.haystack.cli import run_haystack_ingest
from ingest.haystack.json_formats import parse_json
from ingest.haystack.mapping import kind_of, map_records
from ingest.haystack.readers import parse_grid, read_records
from ingest.haystack.values import Record, Ref
from ingest.haystack.writers import make_grid, to_hayson, to_json3, to_zinc
from ingest.haystack.zinc import parse_zinc
from tests.conftest import Server, shared_data

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "haystack" / "mini.trio"
CARYTOWN = (
    "carytown.zinc",
    "carytown.json",
    "carytown.hayson.json",
    "carytown.trio",
    "carytown.csv",
)
ACCEPT = {"zinc": "text/zinc", "hayson": "application/json", "json3": "application/json; v=3"}
LIVE = ("curVal", "curStatus")


def _by_id(records: list[Record]) -> dict[str, Record]:
    return {r["id"].id: r for r in records if isinstance(r.get("id"), Ref)}  # type: ignore[union-attr]


def _mapped(records: list[Record]) -> dict[str, Record]:
    return {k: v for k, v in _by_id(records).items() if kind_of(v) is not None}


def _assert_same(served: Record, source: Record, hid: str) -> None:
    """Equal tags (ref display names included); live values only where no reading replaced them."""
    strip = lambda r: {k: v for k, v in r.items() if k not in LIVE}  # noqa: E731
    assert strip(served) == strip(source), hid
    for name, value in source.items():
        if isinstance(value, Ref):
            assert served[name].dis == value.dis, (hid, name)  # type: ignore[union-attr]
    if "curStatus" not in served:
        assert served.get("curVal") == source.get("curVal"), hid


def _read_ids(server: Server, ids: list[str], fmt: str) -> list[Record]:
    response = httpx.post(
        server.url + "/haystack/read",
        content=to_zinc(make_grid([{"id": Ref(i)} for i in ids])),
        headers={"Content-Type": "text/zinc", "Accept": ACCEPT[fmt], **server.auth("read")},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    grid = parse_zinc(response.text) if fmt == "zinc" else parse_json(response.text)
    return grid.rows


def _dump(platform: Platform, graph: str) -> set[str]:
    """A graph's triples, each blank node named by what it says (a remote store relabels
    blank nodes; the mapping names them after their time-series UUID)."""
    data = platform.store.dump(graph, RdfFormat.N_TRIPLES)
    triples = [q.triple for q in parse(data, format=RdfFormat.N_TRIPLES)]
    said: dict[str, list[str]] = {}
    for t in triples:
        if isinstance(t.subject, BlankNode):
            said.setdefault(t.subject.value, []).append(f"{t.predicate} {t.object}")
    names = {b: "_:" + "|".join(sorted(v)) for b, v in said.items()}

    def term(x: object) -> str:
        return names.get(x.value, str(x)) if isinstance(x, BlankNode) else str(x)

    return {f"{term(t.subject)} {t.predicate} {term(t.object)}" for t in triples}


def _round_trip(server: Server, sources: dict[str, list[Record]], prefix: str) -> None:
    platform = server.platform
    dumps = {}
    for name, records in sources.items():
        graph = f"urn:twingraph:model:{prefix}-{name.replace('.', '-')}"
        result = platform.models.ingest_triples(graph=graph, triples=map_records(records).triples)
        assert result.report is None or result.report.conforms
        dumps[name] = _dump(platform, graph)
    first = next(iter(dumps.values()))
    for name, dump in dumps.items():
        assert dump == first, f"{name} gives a different model"
    source = _mapped(next(iter(sources.values())))
    ids = sorted(source)
    for fmt in ACCEPT:
        served = _by_id(_read_ids(server, ids, fmt))
        assert set(served) == set(source), fmt
        for hid in ids:
            _assert_same(served[hid], source[hid], f"{fmt}:{hid}")


def test_own_fixture_round_trips_through_every_encoding(server: Server) -> None:
    records = read_records(FIXTURE)
    grid = make_grid(records)
    encodings = {
        "trio": records,
        "zinc": parse_grid(to_zinc(grid), "zinc").rows,
        "hayson": parse_grid(to_hayson(grid), "json").rows,
        "json3": parse_grid(to_json3(grid), "json").rows,
    }
    for name, rows in encodings.items():  # our writers and readers agree
        assert _by_id(rows) == _by_id(records), name
    _round_trip(server, encodings, "hs-roundtrip-mini")


def test_carytown_round_trips_in_all_five_encodings(server: Server) -> None:
    sources = {}
    for name in CARYTOWN:
        path = shared_data("haystack", "carytown", name)
        if not path.is_file():
            pytest.skip(f"{path} is absent from ../shared/data")
        sources[name] = read_records(path)
    _round_trip(server, sources, "hs-roundtrip-carytown")
    unmapped = set(_by_id(sources["carytown.zinc"])) - set(_mapped(sources["carytown.zinc"]))
    assert len(unmapped) == 1  # the region record is not a site, space, equip or point


def test_reingest_changes_nothing(server: Server, graph_iri: str) -> None:
    platform = server.platform
    console = Console(file=io.StringIO())
    first = run_haystack_ingest(platform, FIXTURE, graph_iri, None, console)
    before = _dump(platform, graph_iri)
    again = run_haystack_ingest(platform, FIXTURE, graph_iri, None, console)
    assert _dump(platform, graph_iri) == before
    assert again.ingest.graph_triples == first.ingest.graph_triples == len(before)


def test_alpha_round_trips_through_the_view(tmp_path: Path) -> None:
    path = shared_data("haystack", "example_buildings", "alpha.json")
    if not path.is_file():
        pytest.skip(f"{path} is absent from ../shared/data")
    records = read_records(path)
    mapping = map_records(records)
    store = EmbeddedStore(tmp_path / "store")
    try:
        graph = NamedNode("urn:twingraph:model:alpha")
        store.replace([], [Quad(t.subject, t.predicate, t.object, graph) for t in mapping.triples])
        view = ViewCache(store, PointDirectory(store), ClassHierarchy({}), version=lambda: 0)
        entities = view.current().entities
    finally:
        store.close()
    served = _by_id(parse_zinc(to_zinc(make_grid([e.tags for e in entities]))).rows)
    source = _mapped(records)
    assert len(source) == 2032 - len(mapping.unclassified)
    assert set(served) == set(source)
    for hid, record in source.items():
        _assert_same(served[hid], record, hid)
