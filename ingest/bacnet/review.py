"""The review file: the guessed class of every point, for a person to check and correct.

``--review out.csv`` writes one row per point object, lowest confidence first::

    device_instance,object_identifier,object_name,description,units,present_value,
    brick_class,confidence,source,reason

``--apply-review in.csv`` reads it back. Only ``device_instance``, ``object_identifier`` and
``brick_class`` matter; in ``brick_class``:

- a Brick point class (``Zone_Air_Temperature_Sensor``, ``brick:...`` or the full IRI)
  other than the heuristic's guess replaces it (source ``review``, confidence 1.0);
- the guess itself, or an empty cell, keeps the heuristic's guess and confidence, unless
  the ``source`` cell says ``review``: that confirms the guess as reviewed;
- ``skip`` leaves the object out of the model.

So a file written by ``--review`` and applied unedited changes nothing.

Every problem in the file is reported at once, by line, before anything is stored.
"""

from __future__ import annotations

import csv
import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.domain.iris import BRICK
from app.errors import InvalidInputError
from ingest.bacnet.classify import GENERIC_CLASSES, Guess
from ingest.bacnet.mapping import PointKey
from ingest.bacnet.scan import Scan
from ingest.haystack.brick_tags import point_classes

COLUMNS = (
    "device_instance",
    "object_identifier",
    "object_name",
    "description",
    "units",
    "present_value",
    "brick_class",
    "confidence",
    "source",
    "reason",
)
REQUIRED = ("device_instance", "object_identifier", "brick_class")
SKIP = "skip"


class ReviewFormatError(InvalidInputError):
    code = "invalid_review"


@dataclass(slots=True)
class ReviewDecisions:
    #: Point -> the class named in its row (applied when it differs from the guess, or
    #: when the row is ``confirmed``).
    classes: dict[PointKey, str] = field(default_factory=dict)
    #: Points whose row says ``source`` review: taken as reviewed even if unchanged.
    confirmed: set[PointKey] = field(default_factory=set)
    #: Points a person left out.
    skip: set[PointKey] = field(default_factory=set)
    #: Rows naming objects the scan does not have (line, key): reported, not fatal.
    unmatched: list[tuple[int, PointKey]] = field(default_factory=list)


def allowed_classes() -> frozenset[str]:
    """Local names a review may use: Brick's non-deprecated point classes."""
    return frozenset(c.name for c in point_classes()) | GENERIC_CLASSES


def write_review(path: Path, scan: Scan, guesses: Mapping[PointKey, Guess]) -> int:
    """Write the review file; returns the number of rows."""
    rows = []
    for device in scan.devices:
        for obj in device.points:
            guess = guesses.get((device.instance, obj.identifier))
            if guess is None:
                continue
            rows.append(
                (
                    guess.confidence,
                    device.instance,
                    obj.identifier,
                    {
                        "device_instance": device.instance,
                        "object_identifier": obj.identifier,
                        "object_name": obj.name or "",
                        "description": obj.description or "",
                        "units": obj.units or "",
                        "present_value": "" if obj.present_value is None else obj.present_value,
                        "brick_class": guess.brick_class,
                        "confidence": f"{guess.confidence:.2f}",
                        "source": guess.source,
                        "reason": guess.reason,
                    },
                )
            )
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(r[3] for r in rows)
    return len(rows)


def _class_name(cell: str) -> str:
    text = cell.strip()
    if text.startswith(BRICK):
        return text[len(BRICK) :]
    if text.startswith("<" + BRICK) and text.endswith(">"):
        return text[len(BRICK) + 1 : -1]
    return text.removeprefix("brick:")


def read_review(
    path: Path, scan: Scan, *, allowed: frozenset[str] | None = None
) -> ReviewDecisions:
    """Parse an edited review file against the scan it was made from."""
    allowed = allowed if allowed is not None else allowed_classes()
    known = {(d.instance, o.identifier) for d in scan.devices for o in d.points}
    decisions = ReviewDecisions()
    errors: list[str] = []
    seen: dict[PointKey, int] = {}
    try:
        fh = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ReviewFormatError(f"{path}: cannot read ({exc.strerror})") from exc
    with fh:
        reader = csv.DictReader(fh)
        try:
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise ReviewFormatError(
                    f"{path}: the header lacks column(s) {', '.join(missing)} "
                    f"(expected {', '.join(COLUMNS)})"
                )
            for row in reader:
                problem = _row(row, reader.line_num, allowed, known, seen, decisions)
                if problem:
                    errors.append(problem)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ReviewFormatError(f"{path}: not a readable CSV file ({exc})") from exc
    if errors:
        more = f"; and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise ReviewFormatError(
            f"{path}: {len(errors)} problem(s): " + "; ".join(errors[:20]) + more,
            problems=errors,
        )
    return decisions


def _row(
    row: Mapping[str, str | None],
    line: int,
    allowed: frozenset[str],
    known: set[PointKey],
    seen: dict[PointKey, int],
    decisions: ReviewDecisions,
) -> str | None:
    """Record one row's decision; the problem with it, if any."""
    raw_instance = (row.get("device_instance") or "").strip()
    identifier = (row.get("object_identifier") or "").strip()
    cell = (row.get("brick_class") or "").strip()
    if not raw_instance.isdigit():
        return f"line {line}: device_instance {raw_instance!r} is not a number"
    if not identifier:
        return f"line {line}: object_identifier is empty"
    key = (int(raw_instance), identifier)
    if key in seen:
        return f"line {line}: {identifier} of device {key[0]} already reviewed on line {seen[key]}"
    seen[key] = line
    if key not in known:
        decisions.unmatched.append((line, key))
        return None
    if not cell:
        return None
    if cell.lower() == SKIP:
        decisions.skip.add(key)
        return None
    name = _class_name(cell)
    if name not in allowed:
        close = difflib.get_close_matches(name, sorted(allowed), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        return f"line {line}: {cell!r} is not a current Brick point class{hint}"
    decisions.classes[key] = name
    if (row.get("source") or "").strip().lower() == "review":
        decisions.confirmed.add(key)
    return None


def apply_review(
    guesses: Mapping[PointKey, Guess], decisions: ReviewDecisions
) -> dict[PointKey, Guess]:
    """The guesses with a person's choices put in; skipped points stay (the mapping skips)."""
    out = dict(guesses)
    for key, name in decisions.classes.items():
        before = guesses.get(key)
        if before is not None and before.brick_class == name and key not in decisions.confirmed:
            continue
        was = f"heuristic guessed {before.brick_class} ({before.confidence:.2f})" if before else ""
        out[key] = Guess(name, 1.0, "reviewed" + (f"; {was}" if was else ""), source="review")
    return out


def review_rows(path: Path) -> Iterable[dict[str, str]]:
    """The rows of a review file as dictionaries (for tests and tooling)."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        yield from csv.DictReader(fh)
