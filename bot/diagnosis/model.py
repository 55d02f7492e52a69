"""The diagnosis record: the `diagnose --json` contract of DESIGN.md."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

CATEGORIES = (
    "import_error",
    "oom",
    "nan_loss",
    "data_not_found",
    "config_error",
    "shape_error",
    "device_error",
    "distributed",
    "infra",
    "code_error",
    "unknown",
)


@dataclass
class Diagnosis:
    category: str
    retryable: bool
    exception: dict | None = None  # {"type": ..., "message": ...}
    location: dict | None = None  # {"file": ..., "line": ..., "function": ...}
    evidence: list[str] = field(default_factory=list)
    summary: str = ""

    def to_json(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        """The diagnosis for a terminal: category, summary, exception, location, evidence."""
        lines = [f"category: {self.category}{' (retryable)' if self.retryable else ''}", f"summary: {self.summary}"]
        if self.exception:
            lines.append(f"exception: {self.exception.get('type')}: {self.exception.get('message')}")
        if self.location:
            where = self.location
            lines.append(f"location: {where.get('file')}:{where.get('line')} in {where.get('function')}")
        if self.evidence:
            lines.append("evidence:")
            lines += [f"  {line}" for line in self.evidence]
        return "\n".join(lines)
