"""Routes of the Explorer UI: its pages, its own static modules, the vendored chart library.

The pages are static; every piece of data they show comes from the public API (``/graphql``,
``/points/...``, ``/sparql``, ``/queries``) with the caller's own token, so the UI adds no
access path of its own. Only files on explicit lists are served (no directory browsing, no
path from the URL reaches the file system).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from app.api.deps import PlatformDep, ReaderDep
from app.domain.iris import STANDARD_PREFIXES
from app.errors import NotFoundError, UnavailableError

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: URL name -> path below the vendor dir (dist files used as they ship).
VENDOR_FILES = {
    "uPlot.esm.js": "uplot/dist/uPlot.esm.js",
    "uPlot.min.css": "uplot/dist/uPlot.min.css",
}
_STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}
#: Revalidate on every load: the UI changes with the platform, and the files are small.
_NO_CACHE = {"Cache-Control": "no-cache"}


def _served(path: Path) -> FileResponse:
    media = _STATIC_TYPES.get(path.suffix, "application/octet-stream")
    return FileResponse(path, media_type=media, headers=_NO_CACHE)


def explorer_router(*, vendor_dir: Path, static_dir: Path = STATIC_DIR) -> APIRouter:
    """``vendor_dir`` is where ``npm ci`` in ``ui/`` put the front-end libraries
    (``Settings.ui_vendor_dir``)."""
    router = APIRouter(prefix="/explorer", tags=["explorer"], include_in_schema=False)
    static = {p.name: p for p in static_dir.iterdir() if p.is_file() and p.suffix in _STATIC_TYPES}

    @router.get("")
    @router.get("/")
    def explorer_page() -> FileResponse:
        return _served(static["explorer.html"])

    @router.get("/sparql")
    def sparql_page() -> FileResponse:
        return _served(static["sparql.html"])

    @router.get("/static/{name}")
    def static_file(name: str) -> FileResponse:
        path = static.get(name)
        if path is None:
            raise NotFoundError(f"The explorer has no file {name!r}", code="not_found")
        return _served(path)

    @router.get("/vendor/{name}")
    def vendor_file(name: str) -> FileResponse:
        relative = VENDOR_FILES.get(name)
        if relative is None:
            raise NotFoundError(f"The explorer vendors no file {name!r}", code="not_found")
        path = vendor_dir / relative
        if not path.is_file():
            raise UnavailableError(
                f"{path} is missing: install the explorer's front-end libraries with "
                "`make install` (npm ci in ui/)",
                code="ui_vendor_missing",
            )
        return _served(path)

    @router.get("/api/examples")
    def examples(platform: PlatformDep, _: ReaderDep) -> dict[str, object]:
        """The named query library with each query's text, as editor examples, and the
        prefixes the SPARQL endpoint predeclares (the editor compacts IRIs with them)."""
        return {
            "prefixes": STANDARD_PREFIXES,
            "queries": [
                {"name": q.key, "title": q.title, "description": q.description, "text": q.text}
                for q in sorted(platform.queries.values(), key=lambda q: q.key)
            ],
        }

    return router
