"""Every RDF file the project ships parses, and our own shapes do what they say."""

from __future__ import annotations

from pathlib import Path

import pyoxigraph as ox
import pytest

from app.graph.models import ModelValidator
from tests.factories import PREFIXES, vav_model

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(
    p for p in REPO.glob("ontologies/**/*.ttl") if "node_modules" not in p.parts
)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_turtle_parses(path: Path) -> None:
    assert list(ox.parse(path=str(path)))


def test_point_without_timeseries_id_is_a_warning_not_a_violation(validator: ModelValidator) -> None:
    model = PREFIXES + """
ex:v a brick:VAV ; brick:hasPoint ex:t .
ex:t a brick:Zone_Air_Temperature_Sensor ; brick:isPointOf ex:v .
"""
    report = validator.validate([q.triple for q in ox.parse(model, format=ox.RdfFormat.TURTLE)])
    assert report.conforms
    flagged = [r for r in report.warnings if r.focus_node == "urn:ex:t"]
    assert flagged and "hasTimeseriesId" in flagged[0].message
    with_id = validator.validate(
        [q.triple for q in ox.parse(vav_model(), format=ox.RdfFormat.TURTLE)]
    )
    assert not [r for r in with_id.warnings if "hasTimeseriesId" in r.message]
