"""SHACL validation results as values (not exceptions), in the spirit of BuildingMOTIF."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    VIOLATION = "Violation"
    WARNING = "Warning"
    INFO = "Info"


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """One SHACL result: which node broke which shape, and how."""

    focus_node: str
    severity: Severity
    message: str
    path: str | None = None
    value: str | None = None
    shape: str | None = None
    constraint: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "focus_node": self.focus_node,
            "severity": str(self.severity),
            "message": self.message,
            "path": self.path,
            "value": self.value,
            "shape": self.shape,
            "constraint": self.constraint,
        }


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """The outcome of validating a model (or the affected part of one).

    ``conforms`` is False only when there is at least one result of severity Violation:
    warnings (Brick deprecations, for instance) are reported but never block a commit.
    """

    results: tuple[ValidationResult, ...] = ()
    focus_nodes_checked: int = 0
    engine: str = ""
    seconds: float = 0.0
    notes: tuple[str, ...] = field(default=())

    @property
    def conforms(self) -> bool:
        return not any(r.severity is Severity.VIOLATION for r in self.results)

    @property
    def violations(self) -> tuple[ValidationResult, ...]:
        return tuple(r for r in self.results if r.severity is Severity.VIOLATION)

    @property
    def warnings(self) -> tuple[ValidationResult, ...]:
        return tuple(r for r in self.results if r.severity is not Severity.VIOLATION)

    def as_dict(self) -> dict[str, object]:
        return {
            "conforms": self.conforms,
            "violations": len(self.violations),
            "warnings": len(self.warnings),
            "focus_nodes_checked": self.focus_nodes_checked,
            "engine": self.engine,
            "seconds": round(self.seconds, 4),
            "results": [r.as_dict() for r in self.results],
            "notes": list(self.notes),
        }
