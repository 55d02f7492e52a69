"""Look at many waited-for runs at once, cheaply: which waits are over.

One look at every wait costs one question per launch backend (`refresh_runs`: one `scontrol`
for every Slurm job, one Ray job list, a status file per local run) and, for runs read from
W&B, one filtered listing per project (`get_many`); offline runs are read from their files.
Steps are read at most every STEPS_EVERY_S per run (a run that reached its steps is woken up to
that much later); the process state on every look. Nothing is judged here (the loss is the
loop's business once the job is woken): a wait is over when its run ended, logged its target
steps, or its deadline passed (`Wait.ready`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from bot.core.errors import BotError
from bot.core.settings import Settings
from bot.launchers import refresh_runs
from bot.loop.branch_runs import BranchRuns
from bot.loop.repo_context import RepoContext
from bot.loop.waits import Wait
from bot.runs.model import ACTIVE_STATES, RunInfo
from bot.store.runs import RunRecord, StateStore

log = logging.getLogger(__name__)

# How often one run's steps are read from its run store: a W&B listing, or offline files searched
# for under its worktree (the costly part of a look); its process state is asked on every look.
STEPS_EVERY_S = 10.0


@dataclass(frozen=True)
class Watched:
    """One wait and where its run is found: the job's id, its repository (the bot's clone) and branch."""

    key: int
    repo: Path
    branch: str
    wait: Wait


@dataclass(frozen=True)
class Seen:
    state: str
    steps: int


class RunWatch:
    """The watcher's eyes: `over(watched, now)` says which waits are over. Holds one repository
    context and one branch's runs per waiting job, dropped once the job no longer waits."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.clock = clock
        self._runs: dict[tuple[Path, str], BranchRuns] = {}
        self._read_at: dict[str, float] = {}  # run id -> when its steps were last read
        self._steps: dict[str, int] = {}  # run id -> the steps it had then

    @cached_property
    def state(self) -> StateStore:
        return StateStore.open(self.settings.state_dir)

    def over(self, watched: list[Watched], now: float) -> list[int]:
        """The keys of the waits that are over: their deadline passed, or their run is ready. A run
        that cannot be read is reported over too: the job, woken, says what is wrong."""
        self._forget_all_but(watched)
        due = [w for w in watched if now >= w.wait.deadline]
        pending = [w for w in watched if now < w.wait.deadline]
        seen = self.look(pending)
        ready = [w for w in pending if (s := seen.get(w.key)) is None or w.wait.ready(s.state, s.steps, now)]
        return [w.key for w in (*due, *ready)]

    def look(self, watched: list[Watched]) -> dict[int, Seen]:
        """Each wait's run as it stands now; a run that cannot be read is left out. The process
        state is asked on every look; the steps (the run store: W&B, or offline files searched
        for) at most every STEPS_EVERY_S per run, the last count standing in between."""
        records = {w.key: self.state.get_run(w.wait.run_id) for w in watched}
        present = [record for record in records.values() if record is not None]
        try:
            refreshed = {r.id: r for r in refresh_runs(self.state, self.settings, present)}
        except BotError as exc:
            log.warning("the watcher could not ask the launch backends: %s", exc)
            return {}
        now = self.clock()
        seen: dict[int, Seen] = {}
        reading: list[Watched] = []
        for w in watched:
            record = refreshed.get(w.wait.run_id)
            recent = now - self._read_at.get(w.wait.run_id, -STEPS_EVERY_S) < STEPS_EVERY_S
            if record is not None and (record.state not in ACTIVE_STATES or recent):  # over: ready as it is
                seen[w.key] = Seen(record.state, self._steps.get(w.wait.run_id, 0))
            else:
                reading.append(w)
        found = self._batched_reads(reading, refreshed)
        for w in reading:
            record = records[w.key]
            try:
                run = self._run(w, refreshed[record.id] if record else None, found.get(_wandb_id(w, record)))
            except BotError as exc:
                log.warning("job %s: run %s cannot be read: %s", w.key, w.wait.run_id, exc)
                continue
            self._read_at[w.wait.run_id], self._steps[w.wait.run_id] = now, run.steps
            seen[w.key] = Seen(run.state, run.steps)
        return seen

    def _run(self, watched: Watched, record: RunRecord | None, found: RunInfo | None) -> RunInfo:
        runs = self.branch_runs(watched.repo, watched.branch)
        if record is None:  # not launched by the bot (or its record is gone): the store alone
            return found or runs.store.get(watched.wait.run_id)
        return runs.view(record, found)

    def _batched_reads(self, watched: list[Watched], records: dict[str, RunRecord]) -> dict[str, RunInfo]:
        """The W&B runs of every wait, one listing per project, where the store can batch."""
        groups: dict[tuple[str, ...], tuple[BranchRuns, list[str]]] = {}
        for w in watched:
            try:
                runs = self.branch_runs(w.repo, w.branch)
            except BotError:
                continue  # said when the run itself is read
            project = getattr(runs.store, "project", None)
            if not hasattr(runs.store, "get_many") or project is None:
                continue
            run_id = _wandb_id(w, records.get(w.wait.run_id))
            groups.setdefault((str(getattr(runs.store, "entity", "")), str(project)), (runs, []))[1].append(run_id)
        found: dict[str, RunInfo] = {}
        for runs, ids in groups.values():
            try:
                found.update(runs.store.get_many(ids))  # type: ignore[attr-defined]
            except BotError as exc:
                log.warning("the watcher could not list W&B runs: %s", exc)
        return found

    def branch_runs(self, repo: Path, branch: str) -> BranchRuns:
        key = (repo, branch)
        if key not in self._runs:
            self._runs[key] = RepoContext.open(self.settings, repo).runs(branch)
        return self._runs[key]

    def _forget_all_but(self, watched: list[Watched]) -> None:
        keep = {(w.repo, w.branch) for w in watched}
        for key in [k for k in self._runs if k not in keep]:
            del self._runs[key]
        runs = {w.wait.run_id for w in watched}
        for run_id in [r for r in self._read_at if r not in runs]:
            del self._read_at[run_id]
            self._steps.pop(run_id, None)


def _wandb_id(watched: Watched, record: RunRecord | None) -> str:
    """The W&B run id of a waited-for run: its record's, else the wait's run id."""
    return (record.wandb_run_id if record else None) or watched.wait.run_id
