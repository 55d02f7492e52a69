"""Small in-memory fakes of the fix loop's ports (bot/loop/ports.py): a branch's git history,
its runs, and a launcher. No git, no subprocess, no clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.core.errors import BadInput, OperationFailed
from bot.diagnosis.facts import RunFacts
from bot.diagnosis.model import Diagnosis
from bot.loop.model import Diagnosed
from bot.runs.loss import baseline_problem, baseline_stall
from bot.runs.model import RunInfo


@dataclass(frozen=True)
class FakeCommit:
    sha: str
    subject: str = "a human change"
    by_bot: bool = False


class FakeHistory:
    """One linear branch: `commits` oldest first; `pushed` is what the remote has."""

    def __init__(
        self,
        commits: list[FakeCommit],
        *,
        pushed: set[str] | None = None,
        files: dict[str, list[str]] | None = None,
        reverted: list[str] | None = None,
    ):
        self.commits = list(commits)
        self.pushed = set(pushed if pushed is not None else (c.sha for c in commits))
        self.files = files or {}
        self.reverted = reverted or []

    def add(self, commit: FakeCommit, *files: str, pushed: bool = True) -> FakeCommit:
        self.commits.append(commit)
        self.files[commit.sha] = list(files)
        if pushed:
            self.pushed.add(commit.sha)
        return commit

    def _index(self, sha: str) -> int:
        for i, commit in enumerate(self.commits):
            if commit.sha == sha:
                return i
        raise BadInput(f"unknown commit {sha!r}")

    def head(self, branch: str) -> str:
        return self.commits[-1].sha

    def is_ancestor(self, commit: str, branch: str) -> bool:
        return any(c.sha == commit for c in self.commits)

    def commits_since(self, base: str, branch: str) -> list[FakeCommit]:
        return self.commits[self._index(base) + 1 :]

    def files_changed(self, sha: str, branch: str) -> list[str]:
        return self.files.get(sha, [])

    def on_remote(self, sha: str, branch: str) -> bool:
        return sha in self.pushed

    def reverted_bot_fixes(self, branch: str) -> list[str]:
        return self.reverted

    def base_branch(self, branch: str) -> str | None:
        return "main"


@dataclass
class FakeSettings:
    anthropic_api_key: str | None = None
    anthropic_model: str = "fake-model"

    def secrets(self) -> list[str]:
        return [self.anthropic_api_key] if self.anthropic_api_key else []


class FakeRuns:
    """Runs by id. A run's `states` are what successive `get` calls return (the last repeats)."""

    def __init__(self) -> None:
        self.timeline: dict[str, list[RunInfo]] = {}
        self.histories: dict[str, list[dict[str, Any]]] = {}
        self.deleted: list[str] = []
        self.refuse_delete: set[str] = set()
        self.printed: dict[str, list[dict[str, Any]]] = {}  # run id -> the loss rows its console printed
        self.baseline: list[dict[str, Any]] = []  # the history of the base branch's run that learnt

    def add(
        self,
        run_id: str,
        *snapshots: tuple[str, int],
        history: list[dict[str, Any]] | None = None,
        commit: str | None = None,
    ) -> RunInfo:
        self.timeline[run_id] = [
            RunInfo(id=run_id, state=state, steps=steps, commit=commit) for state, steps in snapshots
        ]
        self.histories[run_id] = history or []
        return self.timeline[run_id][0]

    def get(self, run_id: str) -> RunInfo:
        if run_id not in self.timeline:
            raise BadInput(f"no run {run_id}")
        snapshots = self.timeline[run_id]
        return snapshots.pop(0) if len(snapshots) > 1 else snapshots[0]

    def peek(self, run_id: str) -> RunInfo:
        return self.get(run_id)  # the fake's runs carry no verdict of their own

    def latest(self, branch: str) -> RunInfo:
        return self.get(list(self.timeline)[-1])

    def runs(self, branch: str | None = None, state: str | None = None) -> list[RunInfo]:
        return [s[0] for s in reversed(self.timeline.values()) if state is None or s[0].state == state]

    def history(self, run: RunInfo, rows: int = 10) -> list[dict[str, Any]]:
        return self.histories.get(run.id, [])[-rows:]

    def loss_rows(self, run: RunInfo, rows: int = 20) -> list[dict[str, Any]]:
        history = self.histories.get(run.id, [])
        return history[:3] + [row for row in history[3:][-rows:]]

    def console_loss_rows(self, run: RunInfo) -> list[dict[str, Any]]:
        return self.printed.get(run.id, [])

    def baseline_problem(
        self, run: RunInfo, rows: list[dict[str, Any]] | None = None, *, relaunch: bool = False
    ) -> str | None:
        rows = self.loss_rows(run) if rows is None else rows
        found = baseline_problem(rows, self.baseline, "main's run base")
        return found or (baseline_stall(rows, self.baseline, "main's run base") if relaunch else None)

    def baseline_rows(self, run: RunInfo) -> list[dict[str, Any]]:
        return self.baseline

    def facts(self, run: RunInfo, rows: list[dict[str, Any]] | None = None) -> RunFacts:
        return RunFacts(exit_code=run.exit_code, loss_problem=run.loss_problem)

    def log_tail(self, run: RunInfo, lines: int = 200) -> list[str]:
        return []

    def delete(self, run: RunInfo) -> None:
        if run.id in self.refuse_delete:
            raise OperationFailed(f"W&B refused to delete {run.id}")
        self.deleted.append(run.id)


@dataclass
class FakeLauncher:
    existing: set[str] = field(default_factory=set)
    launches: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    fail_with: str | None = None

    def launched(self, run_id: str) -> bool:
        return run_id in self.existing

    def launch(self, run_id: str) -> str:
        if self.fail_with:
            raise OperationFailed(self.fail_with)
        self.launches.append(run_id)
        self.existing.add(run_id)
        return run_id

    def stop(self, run_id: str) -> None:
        self.stopped.append(run_id)


def diagnosed(
    run: RunInfo,
    category: str = "nan_loss",
    *,
    retryable: bool = False,
    summary: str = "Loss is NaN at step 131",
    exception: dict[str, Any] | None = None,
) -> Diagnosed:
    diagnosis = Diagnosis(category=category, retryable=retryable, summary=summary, exception=exception)
    return Diagnosed(run=run, diagnosis=diagnosis, log_tail=[], history=[])
