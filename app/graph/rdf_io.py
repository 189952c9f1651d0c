"""Reading RDF that users send us: format detection, parsing, precise syntax errors."""

from __future__ import annotations

import re
from typing import Any

from pyoxigraph import NamedNode, Quad, RdfFormat, Triple, parse

from app.errors import InvalidInputError, UnsupportedMediaTypeError

#: Extensions and media types accepted for models, beyond what pyoxigraph itself maps.
_EXTRA_EXTENSIONS = {
    "json": RdfFormat.JSON_LD,
    "owl": RdfFormat.RDF_XML,
    "xml": RdfFormat.RDF_XML,
}
_EXTRA_MEDIA_TYPES = {
    "application/json": RdfFormat.JSON_LD,
    "text/n3": RdfFormat.N3,
    "application/xml": RdfFormat.RDF_XML,
    "text/xml": RdfFormat.RDF_XML,
    "text/plain": RdfFormat.N_TRIPLES,
}
SUPPORTED_MEDIA_TYPES = (
    "text/turtle, application/n-triples, application/n-quads, application/trig, "
    "application/ld+json, application/rdf+xml"
)


def format_from_filename(name: str) -> RdfFormat:
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    fmt = RdfFormat.from_extension(ext) or _EXTRA_EXTENSIONS.get(ext)
    if fmt is None:
        raise UnsupportedMediaTypeError(
            f"Cannot tell the RDF format of {name!r} from its extension; use .ttl, .nt, .nq, "
            ".trig, .jsonld or .rdf",
        )
    return fmt


def format_from_media_type(content_type: str | None) -> RdfFormat:
    media = (content_type or "").split(";")[0].strip().lower()
    fmt = RdfFormat.from_media_type(media) if media else None
    fmt = fmt or _EXTRA_MEDIA_TYPES.get(media)
    if fmt is None:
        raise UnsupportedMediaTypeError(
            f"Unsupported content type {media or '(none)'!r}; send one of {SUPPORTED_MEDIA_TYPES}",
        )
    return fmt


def parse_triples(
    data: bytes,
    fmt: RdfFormat,
    *,
    lenient: bool = False,
    base_iri: str | None = None,
    source: str = "input",
) -> list[Triple]:
    """Parse a model; quads from dataset formats are flattened into one graph.

    Blank nodes are renamed so that merging into an existing graph can never join two
    unrelated blank nodes. Syntax errors become :class:`InvalidInputError` with the line and
    column, and nothing is returned (parsing completes before anything is stored).
    """
    try:
        quads: list[Quad] = list(
            parse(
                data,
                format=fmt,
                base_iri=base_iri,
                rename_blank_nodes=True,
                lenient=lenient,
            )
        )
    except SyntaxError as exc:
        line, column = _position(exc)
        where = f" at line {line}, column {column}" if line else ""
        hint = (
            " (an invalid IRI? real-world files sometimes have them: retry with lenient=true)"
            if not lenient and "IRI" in str(exc)
            else ""
        )
        raise InvalidInputError(
            f"{source}: {fmt.name} syntax error{where}: {_message(exc)}{hint}",
            code="parse_error",
            line=line,
            column=column,
        ) from exc
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"{source}: not valid UTF-8 at byte {exc.start}", code="parse_error"
        ) from exc
    triples = [q.triple for q in quads]
    if lenient:
        triples, _ = escape_invalid_iris(triples)
    return triples


_INVALID_IRI_CHARS = re.compile(r'[\x00-\x20<>"{}|^`\\]')


def escape_invalid_iris(triples: list[Triple]) -> tuple[list[Triple], dict[str, str]]:
    """Percent-encode characters IRIs may not contain (what lenient parsing let through).

    Lenient ingest stores the repaired IRIs, so every store and client can read them.
    Returns the triples and a map from each repaired IRI back to the original.
    """
    renamed: dict[str, str] = {}

    def fix(term: Any) -> Any:
        if isinstance(term, NamedNode) and _INVALID_IRI_CHARS.search(term.value):
            escaped = _INVALID_IRI_CHARS.sub(lambda m: f"%{ord(m.group()):02X}", term.value)
            renamed[escaped] = term.value
            return NamedNode(escaped)
        return term

    if not any(
        isinstance(x, NamedNode) and _INVALID_IRI_CHARS.search(x.value)
        for t in triples
        for x in (t.subject, t.predicate, t.object)
    ):
        return triples, renamed
    fixed = [Triple(fix(t.subject), fix(t.predicate), fix(t.object)) for t in triples]
    return fixed, renamed


def _position(exc: SyntaxError) -> tuple[int | None, int | None]:
    return (exc.lineno or None), (exc.offset or None)


def _message(exc: SyntaxError) -> str:
    msg = exc.msg if exc.msg else str(exc)
    # pyoxigraph prefixes "Parser error at line L column C: "; we report the position ourselves.
    if msg.startswith("Parser error at line") and ": " in msg:
        msg = msg.split(": ", 1)[1]
    return msg
