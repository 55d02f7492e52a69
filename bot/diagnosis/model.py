"""The diagnosis record: the `diagnose --json` contract of DESIGN.md."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

CATEGORIES = (
    "import_error", "oom", "nan_loss", "data_not_found", "config_error", "shape_error",
    "device_error", "distributed", "infra", "code_error", "unknown",
)


@dataclass
class Diagnosis:
    category: str
    retryable: bool
    exception: dict | None = None      # {"type": ..., "message": ...}
    location: dict | None = None       # {"file": ..., "line": ..., "function": ...}
    evidence: list[str] = field(default_factory=list)
    summary: str = ""

    def to_json(self) -> dict:
        return asdict(self)
