"""The Explorer UI served by the platform: ``/explorer`` (building tree, point charts) and
``/explorer/sparql`` (a SPARQL editor). Plain ES modules, no build step; the charting
library is served from ``ui/node_modules`` (installed by ``make install`` with ``npm ci``).

Mount with ``app.include_router(explorer_router(vendor_dir=settings.ui_vendor_dir))``
in ``create_app``.
"""

from __future__ import annotations

from app.ui.router import explorer_router

__all__ = ["explorer_router"]
