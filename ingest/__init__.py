"""Ingest jobs: sources -> records -> triples -> the platform's services."""
