"""A branch's runs as the bot sees them: its own launch records joined with the run store.

A run the bot launched has a launch record (process state, exit code, captured log) and,
once the training script called `wandb.init`, a W&B run with the same id (the launcher sets
WANDB_RUN_ID). A script that dies before `wandb.init` leaves only the record, and that is
still a failed run to diagnose. Runs started by hand appear through the run store alone.

A run is over when its process (or scheduler job) is over: while the record says it runs, the
run is running whatever its W&B record says (a script may `wandb.finish(exit_code=1)` and go on,
and an offline run quiet for minutes reads as crashed). A run is failed by its state, or by its
loss whatever its state (`judged`: see bot.runs.loss), or, once it ended, by a loss far worse
than its baseline's (the base branch's run that learnt, bot.loop.baseline) at the same point.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from bot.core.errors import BadInput
from bot.core.settings import Settings
from bot.diagnosis.facts import RunFacts
from bot.diagnosis.tail import tail_lines
from bot.launchers import ACTIVE_STATES, refresh_run
from bot.loop.baseline import Baseline
from bot.runs.console_loss import ConsoleLoss
from bot.runs.locate import find_run_dir
from bot.runs.loss import (
    baseline_problem,
    baseline_stall,
    loss_key,
    loss_problem,
    loss_rising,
    merge_rows,
    printed_loss_problem,
)
from bot.runs.model import FAILED_STATES, JUDGED_ENDS, RunInfo, RunStore
from bot.runs.offline import OfflineRunStore, read_run
from bot.store.runs import RunRecord, StateStore

HEAD_ROWS = 3  # a run's first rows: where its loss started
LOSS_ROWS = 20  # its last rows: where the loss is now
LOCATE_EVERY_S = 2.0  # how often one record's missing W&B run is searched for


class BranchRuns:
    def __init__(
        self,
        *,
        repo: str,
        store: RunStore,
        state: StateStore,
        settings: Settings,
        baseline: Callable[[], Baseline | None] | None = None,
    ):
        self.repo = repo
        self.store = store
        self.state = state
        self.settings = settings
        self._baseline = baseline  # looked up (once, by the caller) only when a run is compared
        self._searched: dict[str, float] = {}  # record id -> when its run was last searched for
        # A run's first rows never change once there are HEAD_ROWS of them; its last rows only
        # when it logs more: the loop reads both on every poll, so they are kept per run.
        self._heads: dict[str, list[dict]] = {}
        self._tails: dict[str, tuple[tuple[object, ...], list[dict]]] = {}
        self._consoles: dict[str, ConsoleLoss] = {}  # log path -> its printed loss, read incrementally

    def runs(self, branch: str | None = None, state: str | None = None) -> list[RunInfo]:
        """Newest first, optionally only those in `state`."""
        records = [self.refresh(r) for r in self.state.list_runs(repo=self.repo, branch=branch)]
        found = {run.id: run for run in self.store.runs(branch)}
        merged = [
            _join(record, found.pop(record.wandb_run_id or record.id, None) or self._located(record))
            for record in records
        ]
        merged.extend(found.values())
        merged.sort(key=lambda run: run.created_at or 0, reverse=True)
        return [run for run in merged if state is None or run.state == state]

    def latest(self, branch: str) -> RunInfo:
        """The branch's newest run, judged by its loss too."""
        runs = self.runs(branch)
        if not runs:
            raise BadInput(f"no run found for branch '{branch}'")
        return self.judged(runs[0])

    def get(self, run_id: str) -> RunInfo:
        """One run by id, judged by its loss too."""
        return self.judged(self.peek(run_id))

    def peek(self, run_id: str) -> RunInfo:
        """One run by id as it stands: its state and steps, not judged by its loss (for a caller
        that judges it its own way: the verifier)."""
        record = self.state.get_run(run_id)
        if record is None:
            return self.store.get(run_id)
        record = self.refresh(record)
        found = _try_get(self.store, record.wandb_run_id or record.id) or self._located(record)
        return _join(record, found)

    def view(self, record: RunRecord, found: RunInfo | None = None) -> RunInfo:
        """A run the bot launched as it stands, from its record as given (already refreshed: the
        watcher asks each backend about many runs at once) and its run in the store (`found`, when
        the caller read it in a batch): its state and steps, not judged by its loss."""
        if found is None:
            found = _try_get(self.store, record.wandb_run_id or record.id) or self._located(record)
        return _join(record, found)

    def judged(self, run: RunInfo) -> RunInfo:
        """`run` with its loss's verdict: a non-finite or exploded loss, logged or printed, is a
        failed run whatever its exit state, and so is a loss far worse than the baseline's once
        the run ended. One that ended (exit 0, or stopped) becomes `failed`; one still running
        keeps its state, since its process is not over, and carries the problem."""
        if run.state == "queued":
            return run  # nothing to judge yet
        rows = self.loss_rows(run)
        own = loss_problem(rows) or printed_loss_problem(self.console_loss_rows(run))
        problem = own or run.loss_problem  # judged twice: the first verdict stands
        if problem is None and run.state in JUDGED_ENDS:
            problem = self.baseline_problem(run, rows)
        return run.with_verdict(problem)

    def baseline_problem(self, run: RunInfo, rows: list[dict] | None = None, *, relaunch: bool = False) -> str | None:
        """Why the run's loss is far worse than its baseline's at the same point (a `relaunch`:
        or no better than the baseline's untrained start), or None (also when there is no
        baseline). Its logged loss (`rows`: its loss rows, when the caller has them) when it logs
        the baseline's loss key, else the loss both printed."""
        baseline = self._baseline() if self._baseline else None
        if baseline is None or baseline.run_id == run.id:
            return None
        rows = self.loss_rows(run) if rows is None else rows
        key = loss_key(baseline.rows)
        if key is not None and any(key in row for row in rows):
            mine, theirs = rows, baseline.rows
        else:
            mine, theirs = self.console_loss_rows(run), baseline.printed
        found = baseline_problem(mine, theirs, baseline.label)
        return found or (baseline_stall(mine, theirs, baseline.label) if relaunch else None)

    def baseline_rows(self, run: RunInfo) -> list[dict]:
        baseline = self._baseline() if self._baseline else None
        return [] if baseline is None or baseline.run_id == run.id else baseline.rows

    def history(self, run: RunInfo, rows: int = 10) -> list[dict]:
        if run.source == "launcher":
            return []
        return self.store.history(run, rows)

    def loss_rows(self, run: RunInfo, rows: int = LOSS_ROWS) -> list[dict]:
        """The run's first rows and its last `rows`: where its loss started and where it is."""
        if run.source == "launcher":
            return []
        head = self._heads.get(run.id)
        if head is None:
            head = self.store.first_history(run, HEAD_ROWS)
            if len(head) >= HEAD_ROWS:
                self._heads[run.id] = head
        key = (run.steps, run.state, run.updated_at, rows)
        cached = self._tails.get(run.id)
        if cached is None or cached[0] != key:
            cached = self._tails[run.id] = (key, self.store.history(run, rows))
        return merge_rows(head, cached[1])

    def console_loss_rows(self, run: RunInfo) -> list[dict]:
        """The loss its console printed, first rows and last (bot.runs.console_loss): a loss
        printed every few steps shows what one logged once an epoch hides, and a job that logs
        nowhere else still prints one."""
        if not run.log_path:
            return []
        return self._consoles.setdefault(run.log_path, ConsoleLoss()).rows(Path(run.log_path))

    def facts(self, run: RunInfo, rows: list[dict] | None = None) -> RunFacts:
        """What the run's end says apart from its log: exit status, the scheduler's verdict, the
        kernel's OOM kills, and its loss (from `rows`, its loss rows, when the caller has them)."""
        record = self.state.get_run(run.record_id) if run.record_id else None
        handle = record.handle if record else {}
        rows = self.loss_rows(run) if rows is None else rows
        printed = self.console_loss_rows(run)
        return RunFacts(
            exit_code=run.exit_code,
            scheduler=handle.get("end_reason"),
            oom_kills=int(handle.get("oom_kills") or 0),
            # A verdict `judged` gave (the baseline's) stands beside the run's own rows'.
            loss_problem=loss_problem(rows) or printed_loss_problem(printed) or run.loss_problem,
            # The logged loss when there is one: a printed one is one batch's, noisier.
            loss_rising=loss_rising(rows if loss_key(rows) else printed),
        )

    def log_tail(self, run: RunInfo, lines: int = 200) -> list[str]:
        """The run's console tail, then the scheduler's verdict when it gave one: a job
        preempted or killed for memory may say nothing about it in its own output."""
        return self._console_tail(run, lines) + self._scheduler_lines(run)

    def _console_tail(self, run: RunInfo, lines: int) -> list[str]:
        # The launcher's log also holds what came before wandb.init (setup, import errors).
        if run.log_path and Path(run.log_path).exists():
            return tail_lines(Path(run.log_path), lines)
        if run.source == "launcher":
            return []
        return self.store.log_tail(run, lines)

    def _scheduler_lines(self, run: RunInfo) -> list[str]:
        record = self.state.get_run(run.record_id) if run.record_id else None
        if record is None or not record.handle.get("end_reason"):
            return []
        job = record.handle.get("job_id") or record.id
        return [f"[{record.backend}] job {job} ended: {record.handle['end_reason']}"]

    def delete(self, run: RunInfo) -> None:
        """Delete a failed run: its W&B run, its captured log and its record."""
        if run.state not in FAILED_STATES:
            raise BadInput(f"run {run.id} is {run.state}; only a failed or crashed run is deleted")
        if run.source != "launcher":
            self.store.delete(run)
        if run.record_id:
            record = self.state.get_run(run.record_id)
            if record and record.log_path:
                Path(record.log_path).unlink(missing_ok=True)
            self.state.delete_run(run.record_id)

    def _located(self, record: RunRecord) -> RunInfo | None:
        """An offline run its job wrote where the store does not look (its code chose the
        folder): searched for under the job's WANDB_DIR and worktree, then recorded, so the
        store reads it from then on. Online, W&B finds runs by id wherever they were written."""
        if not isinstance(self.store, OfflineRunStore) or record.wandb_run_path:
            return None
        now = time.monotonic()
        if now - self._searched.get(record.id, -LOCATE_EVERY_S) < LOCATE_EVERY_S:
            return None
        self._searched[record.id] = now
        roots = [Path(record.handle[key]) for key in ("wandb_dir", "worktree") if record.handle.get(key)]
        path = find_run_dir(roots, record.wandb_run_id or record.id)
        if path is None:
            return None
        self.state.update_run(record.id, wandb_run_path=str(path))
        try:
            return read_run(path, branch_key=self.store.branch_key, running_window=self.store.running_window)
        except BadInput:
            return None

    def refresh(self, record: RunRecord) -> RunRecord:
        """Bring an active record up to date with what its launcher says now."""
        return refresh_run(self.state, self.settings, record)


def _try_get(store: RunStore, run_id: str) -> RunInfo | None:
    try:
        return store.get(run_id)
    except BadInput:
        return None


def _join(record: RunRecord, found: RunInfo | None) -> RunInfo:
    """The record's process state wins both ways: a W&B run killed hard still says 'running',
    and one that W&B calls failed or crashed is not over while its process runs."""
    if found is None:
        return record.to_run_info()
    found.record_id, found.log_path = record.id, record.log_path
    found.branch = found.branch or record.branch
    if record.state not in ACTIVE_STATES:
        found.state, found.exit_code = record.state, record.exit_code
    elif found.state not in ACTIVE_STATES:
        found.state, found.exit_code = record.state, None
    return found
