"""Which ontology files load: Brick version, extensions, settings, stale graphs, reuse."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest
from pydantic import ValidationError

from app.domain.iris import ONTOLOGY_GRAPH_PREFIX
from app.graph.embedded import EmbeddedStore
from app.graph.ontology import (
    BRICK_VERSIONS,
    EXTENSIONS,
    OntologySource,
    default_sources,
    ensure_loaded,
    extension_sources,
    loaded_hashes,
)
from app.graph.validation import ShaclValidator
from app.platform import check_validator_fits
from app.settings import Settings

SHAPE = (
    "@prefix sh: <http://www.w3.org/ns/shacl#> .\n"
    "<urn:shape:S> a sh:NodeShape ; sh:targetClass <urn:C> .\n"
)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_settings_offer_exactly_the_supported_versions_and_extensions() -> None:
    fields = Settings.model_fields
    assert get_args(fields["brick_version"].annotation) == BRICK_VERSIONS
    assert Settings().brick_version == "1.5"
    [literal] = get_args(fields["ontology_extensions"].annotation)
    assert get_args(literal) == EXTENSIONS
    assert Settings().ontology_extensions == []


def test_settings_read_versions_and_extensions_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TWINGRAPH_BRICK_VERSION", "1.4")
    monkeypatch.setenv("TWINGRAPH_ONTOLOGY_EXTENSIONS", "223p")
    assert (Settings().brick_version, Settings().ontology_extensions) == ("1.4", ["223p"])
    monkeypatch.setenv("TWINGRAPH_ONTOLOGY_EXTENSIONS", '["223p"]')
    assert Settings().ontology_extensions == ["223p"]
    monkeypatch.setenv("TWINGRAPH_ONTOLOGY_EXTENSIONS", "")
    assert Settings().ontology_extensions == []
    monkeypatch.setenv("TWINGRAPH_BRICK_VERSION", "1.3")
    with pytest.raises(ValidationError, match="brick_version"):
        Settings()
    monkeypatch.setenv("TWINGRAPH_BRICK_VERSION", "1.5")
    monkeypatch.setenv("TWINGRAPH_ONTOLOGY_EXTENSIONS", "223p,g36")
    with pytest.raises(ValidationError, match="ontology_extensions"):
        Settings()


@pytest.mark.parametrize("version", BRICK_VERSIONS)
def test_sources_follow_the_version_and_the_extensions(version: str) -> None:
    sources = default_sources(Settings().qudt_dir, brick_version=version, extensions=["223p"])
    by_name = {s.name: s.path for s in sources}
    assert by_name["brick"].parts[-2:] == (version, "Brick.ttl")
    # The 223P bundle is one (it imports no Brick); the bridge is the version's own.
    assert by_name["223p"].parts[-3:] == ("1.5", "extensions", "223p.ttl")
    assert by_name["223p-brick"].parts[-3] == version
    assert all(p.is_file() for p in by_name.values())
    plain = default_sources(Settings().qudt_dir, brick_version=version)
    assert not any(s.name.startswith("223p") for s in plain)


def test_extension_listed_twice_loads_once() -> None:
    sources = default_sources(Settings().qudt_dir, extensions=["223p", "223p"])
    names = [s.name for s in sources]
    assert len(names) == len(set(names))


def test_unsupported_versions_and_extensions_are_refused() -> None:
    with pytest.raises(ValueError, match=r"1\.3.*not supported"):
        default_sources(Settings().qudt_dir, brick_version="1.3")
    with pytest.raises(ValueError, match="unknown ontology extension 'g36'"):
        extension_sources("g36")


def test_graphs_no_longer_configured_are_dropped(tmp_path: Path) -> None:
    a = OntologySource("a", _write(tmp_path, "a.ttl", "<urn:a> <urn:p> <urn:o> .\n"))
    b = OntologySource("b", _write(tmp_path, "b.ttl", "<urn:b> <urn:p> <urn:o> .\n"))
    store = EmbeddedStore(tmp_path / "store")
    try:
        assert ensure_loaded(store, [a, b]) == ["a", "b"]
        assert ensure_loaded(store, [a, b]) == []
        # b switched off: its graph and its hash marker go; a stays loaded as it was.
        assert ensure_loaded(store, [a]) == []
        onto = [g for g in store.graph_names() if g.startswith(ONTOLOGY_GRAPH_PREFIX)]
        assert onto == [a.graph]
        assert set(loaded_hashes(store)) == {a.graph}
        # Switched on again, it is loaded afresh.
        assert ensure_loaded(store, [a, b]) == ["b"]
    finally:
        store.close()


def test_a_validator_prepared_for_other_ontologies_is_refused(tmp_path: Path) -> None:
    shapes = _write(tmp_path, "shapes.ttl", SHAPE)
    other = _write(tmp_path, "other.ttl", SHAPE)
    no_shapes_dir = tmp_path / "none"
    validator = ShaclValidator.from_files([shapes])
    assert validator.files == (shapes,)
    check_validator_fits(validator, [OntologySource("brick", shapes)], no_shapes_dir)
    with pytest.raises(ValueError, match="prepared for other ontologies"):
        check_validator_fits(validator, [OntologySource("brick", other)], no_shapes_dir)
