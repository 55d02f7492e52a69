"""Relaunch and verify against fakes of the runs and the launcher, on a fake clock."""

from __future__ import annotations

import pytest

from bot.loop.journal import StepKey, StepLog
from bot.loop.model import GiveUp, Step
from bot.loop.verify import Judgement, Verifier, judge
from bot.loop.waits import Parked, Wait
from bot.repo import config as repo_config
from bot.runs.model import RunInfo
from tests.unit.loop.fakes import FakeLauncher, FakeRuns


class Clock:
    """Time moves only when the verifier sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def verifier(
    runs: FakeRuns,
    launcher: FakeLauncher | None = None,
    steps: StepLog | None = None,
    *,
    min_steps: int = 20,
    timeout: float = 60,
    delete: bool = False,
    ids: list[str] | None = None,
) -> tuple[Verifier, list[str]]:
    config = repo_config.parse("")
    config["verify"].update(min_steps=min_steps, timeout=timeout)
    config["fix"]["delete_failed_run"] = delete
    clock, said = Clock(), []
    fresh = iter(ids or ["new-1", "new-2"])
    return Verifier(
        runs=runs,
        launcher=launcher or FakeLauncher(),
        steps=steps or StepLog(),
        config=config,
        progress=said.append,
        poll=1.0,
        clock=clock,
        sleep=clock.sleep,
        new_id=lambda: next(fresh),
    ), said


FAILED = RunInfo(id="run-1", state="failed", steps=131)

# -- relaunch -------------------------------------------------------------------------------


def test_the_relaunch_id_is_journaled_before_the_launch():
    steps = StepLog()

    class Recording(FakeLauncher):
        def launch(self, run_id: str) -> str:
            assert steps.rows() == {"1:run_id": run_id}, "the id is on record before anything starts"
            return super().launch(run_id)

    launcher = Recording()
    check, _ = verifier(FakeRuns(), launcher, steps)
    assert check.relaunch(1, FAILED) == "new-1"
    assert launcher.launches == ["new-1"] and steps.rows() == {"1:run_id": "new-1", "1:launch": "new-1"}
    assert check.relaunched_from == [FAILED]


def test_a_resumed_relaunch_never_launches_twice():
    launcher = FakeLauncher()
    steps = StepLog(load=lambda: {"2:run_id": "new-0", "2:launch": "new-0"})
    check, _ = verifier(FakeRuns(), launcher, steps)
    assert check.relaunch(2, FAILED) == "new-0"
    assert launcher.launches == []


def test_a_launch_that_happened_before_a_crash_is_adopted_not_repeated():
    launcher = FakeLauncher(existing={"new-0"})
    steps = StepLog(load=lambda: {"1:run_id": "new-0"})
    check, _ = verifier(FakeRuns(), launcher, steps)
    assert check.relaunch(1, FAILED) == "new-0"
    assert launcher.launches == [] and steps.rows()["1:launch"] == "new-0"


def test_a_launch_that_fails_gives_up_with_the_reason():
    check, _ = verifier(FakeRuns(), FakeLauncher(fail_with="a run of branch 'x' is already running"))
    with pytest.raises(GiveUp, match="could not relaunch: a run of branch 'x' is already running"):
        check.relaunch(1, FAILED)


# -- watch --------------------------------------------------------------------------------------


def test_watching_ends_once_the_run_logged_min_steps():
    runs = FakeRuns()
    runs.add(
        "new-1",
        ("queued", 0),
        ("running", 5),
        ("running", 20),
        ("running", 40),
        history=[{"_step": i, "loss": 1.0 / (i + 1)} for i in range(20)],
    )
    check, said = verifier(runs)
    run, problem = check.watch("new-1")
    assert (run.state, run.steps, problem) == ("running", 20, None)
    assert said == ["watching run new-1 for 20 steps"]


def test_watching_ends_when_the_run_ends():
    runs = FakeRuns()
    runs.add("new-1", ("running", 3), ("failed", 4))
    run, problem = verifier(runs)[0].watch("new-1")
    assert (run.state, problem) == ("failed", None)


def test_a_diverging_run_is_stopped_and_the_loss_is_the_problem():
    runs = FakeRuns()
    runs.add(
        "new-1",
        ("running", 6),
        ("killed", 6),
        history=[{"_step": i, "loss": v} for i, v in enumerate([1.0, 0.9, 0.8, 5.0, 20.0, 90.0])],
    )
    launcher = FakeLauncher()
    run, problem = verifier(runs, launcher)[0].watch("new-1")
    assert launcher.stopped == ["new-1"] and run.state == "failed", "stopped for its loss: failed, not killed"
    assert problem is not None and "diverging" in problem and run.loss_problem == problem


def test_a_nan_loss_in_a_run_that_already_ended_needs_no_stop():
    runs = FakeRuns()
    runs.add("new-1", ("failed", 2), history=[{"_step": 0, "loss": 1.0}, {"_step": 1, "loss": "NaN"}])
    launcher = FakeLauncher()
    _, problem = verifier(runs, launcher)[0].watch("new-1")
    assert launcher.stopped == [] and problem == "loss is nan at step 1"


def test_a_loss_that_exploded_on_the_console_fails_a_run_whose_logged_loss_looks_fine():
    """One loss logged an epoch (its mean, falling) hides what the console printed each few
    batches: a run that diverged within its first epoch is not verified, and is stopped."""
    runs = FakeRuns()
    runs.add("new-1", ("running", 2), ("killed", 2), history=[{"_step": 0, "loss": 6250.0}, {"_step": 1, "loss": 19.3}])
    runs.printed["new-1"] = [{"_step": i, "loss": v} for i, v in enumerate([2.21, 1.4e4, 196.0, 37.7])]
    launcher = FakeLauncher()
    run, problem = verifier(runs, launcher, min_steps=2)[0].watch("new-1")
    assert (problem, launcher.stopped) == ("printed loss is diverging: 2.21 → 37.7", ["new-1"])


def test_a_slow_run_is_judged_at_the_timeout():
    runs = FakeRuns()
    runs.add("new-1", ("running", 3))
    check, _ = verifier(runs, timeout=5)
    run, problem = check.watch("new-1")
    assert (run.state, run.steps, problem) == ("running", 3, None)
    assert check.clock() == 6.0, "polled once a second until past the deadline"


# -- judge -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "state, steps, problem, expected",
    [
        ("running", 20, None, Judgement.VERIFIED),
        ("finished", 3, None, Judgement.VERIFIED),  # a short job that ended well
        ("running", 3, None, Judgement.UNVERIFIED),  # sane, but short of min_steps at the timeout
        ("failed", 30, None, Judgement.FAILED),
        ("crashed", 0, None, Judgement.FAILED),
        ("killed", 6, "loss is diverging", Judgement.FAILED),  # the bot stopped it
        ("running", 25, "loss is nan at step 3", Judgement.FAILED),
    ],
)
def test_the_watched_run_is_judged(state, steps, problem, expected):
    assert judge(RunInfo(id="new-1", state=state, steps=steps), problem, 20) is expected


def test_a_relaunched_run_stopped_by_someone_else_ends_the_loop():
    with pytest.raises(GiveUp, match="the relaunched run new-1 was stopped by someone else"):
        judge(RunInfo(id="new-1", state="killed", steps=4), None, 20)


# -- delete the failed runs at the end -----------------------------------------------------------


def relaunched(runs: FakeRuns, steps: StepLog | None = None, *, delete: bool = False) -> tuple[Verifier, list[str]]:
    runs.add("run-1", ("failed", 131))
    runs.add("run-2", ("failed", 140))
    check, said = verifier(runs, steps=steps, delete=delete)
    check.relaunch(1, runs.get("run-1"))
    check.relaunch(2, runs.get("run-2"))
    return check, said


def test_failed_runs_stay_unless_the_repo_asks_to_delete_them():
    runs = FakeRuns()
    check, _ = relaunched(runs)
    check.delete_failed_runs()
    assert runs.deleted == []


def test_each_relaunched_run_is_deleted_once_at_the_end():
    runs, steps = FakeRuns(), StepLog(load=lambda: {"deleted:run-1": True})
    check, said = relaunched(runs, steps, delete=True)
    check.delete_failed_runs()
    assert runs.deleted == ["run-2"], "run-1 was deleted before the job was resumed"
    assert steps.done(StepKey(Step.DELETED, run="run-2"))
    assert said[-1] == "deleted failed run run-2"


def test_a_run_that_cannot_be_deleted_is_reported_and_not_tried_again():
    runs = FakeRuns()
    runs.refuse_delete.add("run-1")
    steps = StepLog()
    check, said = relaunched(runs, steps, delete=True)
    check.delete_failed_runs()
    assert "could not delete failed run run-1: W&B refused to delete run-1" in said
    assert runs.deleted == ["run-2"] and steps.done(StepKey(Step.DELETED, run="run-1"))


# -- issue 10: verified means learning; a failed run still running is stopped before its fix -------


def test_at_min_steps_a_loss_running_away_is_not_verified_and_the_run_is_stopped():
    runs = FakeRuns()
    rising = [4.0, 3.0, 2.0, 2.1, 2.3, 2.6, 2.9]  # never twice its start, but climbing away
    runs.add("new-1", ("running", 7), ("killed", 7), history=[{"_step": i, "loss": v} for i, v in enumerate(rising)])
    launcher = FakeLauncher()
    run, problem = verifier(runs, launcher, min_steps=7)[0].watch("new-1")
    assert problem is not None and problem.startswith("loss is rising: 2 → 2.9")
    assert launcher.stopped == ["new-1"]


def test_before_min_steps_only_a_broken_loss_stops_the_run():
    runs = FakeRuns()
    early = [4.0, 3.0, 3.1, 3.2, 3.3]  # rising, but at step 5 of 20: wait and see
    runs.add("new-1", ("running", 5), ("running", 20), history=[{"_step": i, "loss": v} for i, v in enumerate(early)])
    runs.histories["new-1"] += [{"_step": 5 + i, "loss": 3.0 - 0.1 * i} for i in range(15)]
    launcher = FakeLauncher()
    run, problem = verifier(runs, launcher)[0].watch("new-1")
    assert (run.steps, problem, launcher.stopped) == (20, None, [])


def test_at_min_steps_a_loss_far_worse_than_the_baseline_is_not_verified_and_the_run_is_stopped():
    runs = FakeRuns()
    runs.baseline = [{"_step": i, "loss": v} for i, v in enumerate([2.3, 1.5, 0.9, 0.6, 0.4, 0.3])]
    hot = [100.0, 20.0, 12.0, 9.0, 7.0, 6.0]  # exploded before its first log, then falls: 20x main at the end
    runs.add("new-1", ("running", 6), ("killed", 6), history=[{"_step": i, "loss": v} for i, v in enumerate(hot)])
    launcher = FakeLauncher()
    run, problem = verifier(runs, launcher, min_steps=6)[0].watch("new-1")
    assert problem == "loss 6 at step 5 against 0.3 on main's run base"
    assert launcher.stopped == ["new-1"]


def test_a_finished_relaunch_no_better_than_untrained_beside_a_baseline_that_learnt_is_not_verified():
    runs = FakeRuns()
    runs.baseline = [{"_step": i, "loss": v} for i, v in enumerate([2.3, 1.9, 1.2, 0.8, 0.5, 0.3])]
    flat = [2.3, 4.1, 2.3, 2.33, 2.31, 2.32]  # finite, never 10x main's: at chance all along
    runs.add("new-1", ("finished", 6), history=[{"_step": i, "loss": v} for i, v in enumerate(flat)])
    check = verifier(runs, FakeLauncher(), min_steps=6)[0]
    run, problem = check.watch("new-1")
    assert problem == "loss 2.32 at step 5 is no better than untrained: main's run base fell from 2.3 to 0.3 by then"
    assert run.state == "failed" and check.judge(run, problem) is Judgement.FAILED


# pytorch/examples siamese_network (Adadelta, lr 1.0): main's own run rises fivefold over its
# first batches, then learns. A relaunch at main's settings judged there is not diverging.
ADADELTA_MAIN = [0.82, 4.04, 1.84, 0.74, 0.80, 0.67, 0.63]


def test_a_relaunch_that_starts_as_the_baselines_own_run_did_is_not_failed_for_it():
    runs = FakeRuns()
    runs.baseline = [{"_step": i, "loss": v} for i, v in enumerate(ADADELTA_MAIN)]
    start = [0.87, 3.2, 4.42]  # above twice its first at step 2, as main's was
    runs.add("new-1", ("running", 3), history=[{"_step": i, "loss": v} for i, v in enumerate(start)])
    launcher = FakeLauncher()
    run, problem = verifier(runs, launcher, min_steps=2)[0].watch("new-1")
    assert (problem, launcher.stopped) == (None, [])


def test_a_relaunch_far_above_the_baselines_own_start_is_still_failed():
    runs = FakeRuns()
    runs.baseline = [{"_step": i, "loss": v} for i, v in enumerate(ADADELTA_MAIN)]
    start = [0.87, 30.0, 45.0]  # ten times what main reached by step 2
    runs.add("new-1", ("running", 3), ("killed", 3), history=[{"_step": i, "loss": v} for i, v in enumerate(start)])
    launcher = FakeLauncher()
    run, problem = verifier(runs, launcher, min_steps=2)[0].watch("new-1")
    assert problem == "loss is diverging: 0.87 → 45 by step 2" and launcher.stopped == ["new-1"]


def test_before_min_steps_a_run_is_not_compared_with_the_baseline():
    runs = FakeRuns()
    runs.baseline = [{"_step": i, "loss": v} for i, v in enumerate([2.3, 1.5, 0.9, 0.6, 0.4, 0.3])]
    slow_start = [2.3, 40.0, 20.0]  # far worse at step 2 of 6, and running: it may catch up
    runs.add(
        "new-1", ("running", 3), ("running", 6), history=[{"_step": i, "loss": v} for i, v in enumerate(slow_start)]
    )
    runs.histories["new-1"] += [{"_step": 3 + i, "loss": v} for i, v in enumerate([1.0, 0.5, 0.35])]
    launcher = FakeLauncher()
    run, problem = verifier(runs, launcher, min_steps=6)[0].watch("new-1")
    assert (run.steps, problem, launcher.stopped) == (6, None, [])


def test_a_failed_run_still_running_is_stopped_before_its_fix_is_pushed():
    launcher = FakeLauncher(existing={"run-1"})
    check, said = verifier(FakeRuns(), launcher)
    failing = RunInfo(id="run-1", state="running", loss_problem="loss is nan at step 3")
    check.end(failing)
    assert launcher.stopped == ["run-1"] and said == ["stopping run run-1: loss is nan at step 3"]
    check.end(RunInfo(id="run-2", state="running", loss_problem="loss is nan"))  # started by hand
    check.end(RunInfo(id="run-1", state="failed"))  # over already
    assert launcher.stopped == ["run-1"]


def test_a_job_that_logs_to_wandb_is_not_verified_on_its_exit_code(tmp_path):
    finished_without_wandb = RunInfo(id="new-1", state="finished", steps=0, source="launcher")
    assert judge(finished_without_wandb, None, 20) is Judgement.VERIFIED, "a job that never logs to W&B"
    assert judge(finished_without_wandb, None, 20, needs_wandb=True) is Judgement.UNVERIFIED
    (tmp_path / "train.py").write_text("import wandb\nrun = wandb.init(project='p')\n")
    check, said = verifier(FakeRuns())
    check.logs_to_wandb = True
    assert check.judge(finished_without_wandb, None) is Judgement.UNVERIFIED
    assert said[-1] == "run new-1 is not verified: the job logs to W&B but its W&B run was not found"
    assert Verifier(
        runs=FakeRuns(), launcher=FakeLauncher(), steps=StepLog(), config={}, progress=said.append, worktree=tmp_path
    ).logs_to_wandb


def test_a_relaunch_of_a_run_that_had_a_wandb_run_needs_one_too():
    check, _ = verifier(FakeRuns())
    check.relaunch(1, RunInfo(id="run-1", state="failed", source="offline"))
    assert check.logs_to_wandb


# -- parked waits: the server's loop leaves the wait to the watcher ----------------------------


def parked(runs: FakeRuns, *, resumed=None, timeout: float = 60) -> Verifier:
    check, _ = verifier(runs, timeout=timeout)
    check.park, check.resumed = True, resumed
    return check


def test_a_parked_watch_raises_its_wait_instead_of_sleeping():
    runs = FakeRuns()
    runs.add("new-1", ("queued", 0))
    check = parked(runs)
    with pytest.raises(Parked) as raised:
        check.watch("new-1")
    assert raised.value.wait == Wait("new-1", 20, 60.0, 1.0)
    assert check.clock() == 0.0, "nothing slept"


def test_a_resumed_watch_keeps_the_deadline_it_was_parked_with_and_judges_the_ready_run():
    runs = FakeRuns()
    runs.add("new-1", ("running", 20), history=[{"_step": i, "loss": 1.0 / (i + 1)} for i in range(20)])
    wait = Wait("new-1", 20, 5.0, 1.0)
    run, problem = parked(runs, resumed=wait).watch("new-1")
    assert (run.state, run.steps, problem) == ("running", 20, None)


def test_a_resumed_watch_past_its_deadline_is_judged_as_it_stands():
    runs = FakeRuns()
    runs.add("new-1", ("running", 3))
    check = parked(runs, resumed=Wait("new-1", 20, -1.0))
    run, problem = check.watch("new-1")
    assert (run.steps, problem) == (3, None)
    assert check.judge(run, problem) is Judgement.UNVERIFIED


def test_a_wait_for_another_run_is_not_the_resumed_one():
    runs = FakeRuns()
    runs.add("new-2", ("queued", 0))
    with pytest.raises(Parked) as raised:
        parked(runs, resumed=Wait("new-1", 20, 5.0)).watch("new-2")
    assert raised.value.wait.run_id == "new-2" and raised.value.wait.deadline == 60.0


@pytest.mark.parametrize(
    "state, steps, now, ready",
    [
        ("queued", 0, 0, False),
        ("running", 19, 0, False),
        ("running", 20, 0, True),
        ("failed", 3, 0, True),
        ("running", 3, 10, True),
    ],
)
def test_a_wait_is_ready_when_its_run_ended_reached_its_steps_or_time_is_up(state, steps, now, ready):
    assert Wait("r", 20, 10.0).ready(state, steps, now) is ready


def test_a_wait_round_trips_through_json():
    wait = Wait("r-1", 20, 1234.5, 2.0)
    assert Wait.from_json(wait.to_json()) == wait
