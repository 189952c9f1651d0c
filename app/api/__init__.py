"""HTTP surfaces. Only this package knows about FastAPI."""
