"""What a fixer proposes and what it is given. Fixers never touch git: the pipeline does."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bot.diagnosis.model import Diagnosis
from bot.runs.model import RunInfo


@dataclass
class Edit:
    """Replace the exact text `search` (which must occur once) by `replace` in `path`.

    `path` is relative to the worktree. An empty `search` creates the file (it must not exist)
    or, with `append=True`, appends `replace` to it.
    """

    path: str
    search: str
    replace: str
    append: bool = False


@dataclass
class FixProposal:
    fixer: str  # "rule:lower-lr", "llm:<model>", "relaunch"
    description: str  # goes into the commit subject "Fix: <description>"
    root_cause: str
    edits: list[Edit] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)  # what the fixer based the change on
    tokens: dict | None = None  # {"input":, "output":, "cache_read":, "cache_write":}
    cost_usd: float | None = None


@dataclass
class FixContext:
    worktree: Path
    branch: str
    diagnosis: Diagnosis
    config: dict  # the validated repo config
    log_tail: list[str] = field(default_factory=list)  # already redacted
    run_config: dict = field(default_factory=dict)
    base_branch: str | None = None  # e.g. "main"; for diffs and config evidence
    hint: str | None = None  # free text from the /fix-and-relaunch comment
    pr_text: str | None = None
    earlier_run_configs: list[dict] = field(default_factory=list)
    previous_attempts: list[dict] = field(default_factory=list)
    run: RunInfo | None = None  # the failed run: its state, exit status, steps (for the LLM's prompt)
