"""A branch's runs as the loop sees them (issue 10): a run is over when its process is, and
failed by its loss whatever its exit state. Real state store; a small run store; a backend that
reports what its handle says."""

from __future__ import annotations

from typing import Any

import pytest

from bot.core.errors import BadInput
from bot.core.settings import Settings
from bot.launchers import LaunchStatus, register
from bot.launchers.base import Handle, Launcher, LaunchSpec
from bot.loop.baseline import Baseline
from bot.loop.branch_runs import BranchRuns
from bot.runs.model import RunInfo
from bot.store.runs import StateStore


class Process(Launcher):
    """A backend whose job is alive while its handle says so."""

    name = "test-process"

    def __init__(self, settings: Any, config: Any = None) -> None:
        self.settings = settings

    def launch(self, spec: LaunchSpec) -> Handle:
        raise NotImplementedError

    def status(self, handle: Handle) -> LaunchStatus:
        if handle["alive"]:
            return LaunchStatus("running")
        return LaunchStatus("finished" if handle["exit_code"] == 0 else "failed", exit_code=handle["exit_code"])

    def cancel(self, handle: Handle) -> None:
        raise NotImplementedError


class Store:
    """A run store over fixed runs and their history rows."""

    def __init__(self) -> None:
        self.found: dict[str, RunInfo] = {}
        self.rows: dict[str, list[dict]] = {}

    def add(self, run: RunInfo, losses: list[float]) -> None:
        run.source = "offline"
        self.found[run.id] = run
        self.rows[run.id] = [{"_step": i, "train/loss": v} for i, v in enumerate(losses)]

    def runs(self, branch: str | None = None) -> list[RunInfo]:
        return [RunInfo(**vars(run)) for run in self.found.values()]

    def get(self, run_id: str) -> RunInfo:
        if run_id not in self.found:
            raise BadInput(f"no run {run_id}")
        return RunInfo(**vars(self.found[run_id]))

    def history(self, run: RunInfo, rows: int = 10) -> list[dict]:
        return self.rows[run.id][-rows:]

    def first_history(self, run: RunInfo, rows: int = 3) -> list[dict]:
        return self.rows[run.id][:rows]

    def log_tail(self, run: RunInfo, lines: int = 200) -> list[str]:
        return []

    def delete(self, run: RunInfo) -> None:
        self.found.pop(run.id)


@pytest.fixture(autouse=True)
def backend():
    register(Process.name, Process)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(state_dir=tmp_path / "state")


@pytest.fixture
def state(settings) -> StateStore:
    return StateStore.open(settings.state_dir)


def branch_runs(store: Store, state: StateStore, settings: Settings) -> BranchRuns:
    return BranchRuns(repo="/r", store=store, state=state, settings=settings)


def launched(state: StateStore, run_id: str, *, alive: bool, exit_code: int | None = None) -> None:
    state.add_run(id=run_id, repo="/r", branch="exp", backend=Process.name, state="running")
    state.update_handle(run_id, alive=alive, exit_code=exit_code)


def test_wandb_failed_but_process_alive_is_running(settings, state):
    store = Store()
    store.add(RunInfo(id="r-1", state="failed", exit_code=1, steps=3), [4.6, 3.0, 2.5])
    launched(state, "r-1", alive=True)
    runs = branch_runs(store, state, settings)

    run = runs.get("r-1")
    assert (run.state, run.exit_code, run.failed) == ("running", None, False)

    state.update_handle("r-1", alive=False, exit_code=0)
    run = runs.get("r-1")
    assert (run.state, run.exit_code) == ("finished", 0), "over when its process is, with the process's end"


def test_a_run_that_exits_0_with_an_exploded_loss_failed(settings, state):
    store = Store()
    store.add(RunInfo(id="r-1", state="finished", exit_code=0, steps=40), [4.6, 446.0] + [15.0] * 40)
    runs = branch_runs(store, state, settings)
    run = runs.get("r-1")
    assert (run.state, run.failed) == ("failed", True)
    assert run.loss_problem == "train/loss is diverging: 4.6 → 15 by step 41", "its first rows read beside its last"
    assert runs.latest("exp").state == "failed"


def test_a_running_run_with_a_nan_loss_is_failing_but_not_over(settings, state):
    store = Store()
    store.add(RunInfo(id="r-1", state="running", steps=3), [4.6, 3.0, float("nan")])
    launched(state, "r-1", alive=True)
    run = branch_runs(store, state, settings).get("r-1")
    assert (run.state, run.failed, run.loss_problem) == ("running", True, "train/loss is nan at step 2")


def test_the_facts_of_a_run_for_its_diagnosis(settings, state):
    store = Store()
    store.add(RunInfo(id="r-1", state="crashed", steps=3), [4.6, 5.0, 6.0])
    launched(state, "r-1", alive=False, exit_code=137)
    state.update_handle("r-1", end_reason="OOM: the kernel's OOM killer killed 1 process(es)", oom_kills=1)
    runs = branch_runs(store, state, settings)
    facts = runs.facts(runs.get("r-1"))
    assert (facts.exit_code, facts.signal, facts.oom_kills, facts.loss_rising) == (137, 9, 1, True)
    assert facts.scheduler.startswith("OOM")


def test_a_job_that_prints_a_nan_loss_and_exits_0_failed_without_a_wandb_run(settings, state, tmp_path):
    """A job that logs nowhere but its console: its printed loss is its history."""
    log = tmp_path / "r-1.log"
    log.write_text("step 0 | loss 3.5123\nstep 10 | loss nan\nstep 20 | loss nan\ndone\n")
    launched(state, "r-1", alive=False, exit_code=0)
    state.update_run("r-1", log_path=str(log))
    run = branch_runs(Store(), state, settings).get("r-1")
    assert (run.source, run.state, run.loss_problem) == ("launcher", "failed", "printed loss is nan")


def test_a_loss_that_exploded_within_a_logged_epoch_fails_the_run(settings, state, tmp_path):
    """One train_loss an epoch (its mean: 6250, 19.3, 9.3) hides what the console printed
    every few batches (timm at a learning rate of 20)."""
    store = Store()
    store.add(RunInfo(id="r-1", state="finished", exit_code=0, steps=3), [6250.0, 19.3, 9.3])
    launched(state, "r-1", alive=False, exit_code=0)
    log = tmp_path / "r-1.log"
    losses = [2.21, 1.4e4, 196.0, 37.7, 12.0, 9.1]
    log.write_text("".join(f"Train: 0 [{i:4d}/15]  Loss: {v} ({v})  LR: 2.000e+01\n" for i, v in enumerate(losses)))
    state.update_run("r-1", log_path=str(log))
    runs = branch_runs(store, state, settings)
    run = runs.get("r-1")
    assert (run.state, run.loss_problem) == ("failed", "printed loss is diverging: 2.21 → 9.1")
    facts = runs.facts(run)
    assert facts.loss_problem == run.loss_problem
    assert facts.loss_rising is False, "the logged loss, falling, says whether it rose"


def test_an_ended_run_far_worse_than_the_baseline_failed_a_running_one_is_not_compared(settings, state):
    store = Store()
    base = [2.3, 1.5, 0.9, 0.6, 0.4]
    store.add(RunInfo(id="main-1", state="finished", exit_code=0, steps=5), base)
    store.add(RunInfo(id="r-1", state="finished", exit_code=0, steps=5), [300.0, 20.0, 12.0, 10.0, 9.0])

    def baseline() -> Baseline | None:
        return Baseline("main-1", "main", store.rows["main-1"], [])

    runs = BranchRuns(repo="/r", store=store, state=state, settings=settings, baseline=baseline)
    run = runs.get("r-1")
    assert (run.state, run.loss_problem) == ("failed", "train/loss 9 at step 4 against 0.4 on main's run main-1")
    assert runs.judged(run).loss_problem == run.loss_problem, "judged twice: the verdict stands"
    assert runs.facts(run).loss_problem == run.loss_problem, "the diagnosis sees it"
    assert runs.get("main-1").loss_problem is None, "the baseline is not compared with itself"

    store.found["r-1"].state = "running"
    assert (runs.get("r-1").state, runs.get("r-1").loss_problem) == ("running", None), "it may still catch up"


def test_without_a_baseline_a_falling_loss_learns(settings, state):
    store = Store()
    store.add(RunInfo(id="r-1", state="finished", exit_code=0, steps=5), [300.0, 20.0, 12.0, 10.0, 9.0])
    for runs in (
        branch_runs(store, state, settings),
        BranchRuns(repo="/r", store=store, state=state, settings=settings, baseline=lambda: None),
    ):
        run = runs.get("r-1")
        assert (run.state, run.loss_problem) == ("finished", None)
