"""What static inspection says about a release: findings (one defect each) and the report.

A finding names a stable check id (``area.defect``), so that broken release variants, the
portability suite and the reports can refer to the check that caught something.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]
SEVERITY_ORDER: dict[str, int] = {"error": 0, "warning": 1, "info": 2}

# Check areas, in the order a report lists them.
AREAS: tuple[str, ...] = ("archive", "layout", "macho", "elf", "scripts", "footprint")


@dataclass(frozen=True)
class Finding:
    check: str  # stable id "<area>.<defect>", e.g. "macho.rosetta_required"
    severity: Severity
    path: str  # the file or archive member concerned, relative to the release root
    message: str
    hint: str = ""  # one line: what to change in the release

    @property
    def area(self) -> str:
        return self.check.split(".", 1)[0]

    def line(self) -> str:
        text = f"[{self.severity}] {self.check}: {self.path}: {self.message}"
        return f"{text} (fix: {self.hint})" if self.hint else text


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (SEVERITY_ORDER[f.severity], f.check, f.path))


@dataclass
class Report:
    """The outcome of inspecting one release for one target."""

    release: str
    target: str
    findings: list[Finding] = field(default_factory=list)
    footprint: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)

    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def in_area(self, area: str) -> list[Finding]:
        return [f for f in self.findings if f.area == area]

    def checks(self, severity: Severity | None = None) -> set[str]:
        return {f.check for f in self.findings if severity is None or f.severity == severity}

    def to_dict(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "target": self.target,
            "ok": not self.errors(),
            "counts": {s: sum(1 for f in self.findings if f.severity == s) for s in SEVERITY_ORDER},
            "findings": [asdict(f) for f in sort_findings(self.findings)],
            "footprint": self.footprint,
            "stats": self.stats,
        }


def describe_failures(area: str, report: Report, findings: list[Finding]) -> str:
    """A failure message a release engineer can act on without opening another file."""
    lines = [f"{len(findings)} error-level {area} finding(s) in {report.release} for target {report.target}:"]
    for finding in findings:
        lines.append(f"  - {finding.check}: {finding.path}: {finding.message}")
        if finding.hint:
            lines.append(f"      fix: {finding.hint}")
    return "\n".join(lines)
