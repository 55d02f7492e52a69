"""The diagnosis record: the `diagnose --json` contract of DESIGN.md."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum

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


class KeyProblem(str, Enum):
    MISSING = "missing"  # the code reads a key, argument or global its config does not define
    UNKNOWN = "unknown"  # the launch (a flag, an override, a config file) sets a key the code does not define
    INVALID = "invalid"  # a key whose value does not parse

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ConfigKey:
    """The offending config name.

    name: as the config spells it, dotted when nested (`warmup_steps`, `trainer.max_epochs`);
    for a flag, the flag without its leading dashes (`learning-ratee`, `lr_decay`).
    flag: the command-line flag as written, when a flag is the culprit (`--learning-ratee`).
    suggestion: the tool's own "did you mean" (`lr`, `--learning-rate`), when it printed one.
    holder: for a missing attribute, the type of the object that lacks it (`Namespace` for
    argparse, `Args` for a config dataclass): where the key is declared.
    """

    name: str
    problem: KeyProblem
    flag: str | None = None
    suggestion: str | None = None
    holder: str | None = None


@dataclass
class Diagnosis:
    category: str
    retryable: bool
    exception: dict | None = None  # {"type": ..., "message": ...}
    location: dict | None = None  # {"file": ..., "line": ..., "function": ...}
    evidence: list[str] = field(default_factory=list)
    summary: str = ""
    # config_error: the key, argument, global or flag the failure names (see ConfigKey); for a
    # code_error raised by a lookup (KeyError, NameError, AttributeError), the name looked up: a
    # config key the log alone cannot tell from any other name, which a fixer checks in the repo.
    config_key: ConfigKey | None = None

    def to_json(self) -> dict:
        """The DESIGN.md keys, plus `config_key` when there is one."""
        data = asdict(self)
        if self.config_key is None:
            data.pop("config_key")
        else:
            data["config_key"]["problem"] = self.config_key.problem.value
        return data

    def text(self) -> str:
        """The diagnosis for a terminal: category, summary, exception, location, evidence."""
        lines = [f"category: {self.category}{' (retryable)' if self.retryable else ''}", f"summary: {self.summary}"]
        if self.exception:
            lines.append(f"exception: {self.exception.get('type')}: {self.exception.get('message')}")
        if self.config_key:
            key = self.config_key
            lines.append(
                f"config key: {key.name} ({key.problem.value})"
                + (f", did you mean {key.suggestion}?" if key.suggestion else "")
            )
        if self.location:
            where = self.location
            lines.append(f"location: {where.get('file')}:{where.get('line')} in {where.get('function')}")
        if self.evidence:
            lines.append("evidence:")
            lines += [f"  {line}" for line in self.evidence]
        return "\n".join(lines)
