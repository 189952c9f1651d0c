"""Haystack ingest: grids (Zinc, Haystack 3 JSON, Hayson, Trio, CSV) -> records -> Brick/REC."""
