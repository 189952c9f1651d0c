"""TwinGraph: semantic graph digital twins for buildings."""

__version__ = "0.1.0"
