"""Finding the baseline (bot.loop.baseline): the base branch's newest finished run whose loss
learnt, read once; no such run, no baseline."""

from __future__ import annotations

from typing import Any

from bot.core.errors import OperationFailed
from bot.loop.baseline import CANDIDATES, Baseline, find_baseline
from bot.runs.model import RunInfo


class Store:
    def __init__(self, histories: dict[str, list[dict[str, Any]]], broken: bool = False) -> None:
        self.histories = histories
        self.broken = broken
        self.reads: list[str] = []

    def history(self, run: RunInfo, rows: int = 10) -> list[dict[str, Any]]:
        self.reads.append(run.id)
        if self.broken:
            raise OperationFailed("W&B is unreachable")
        return self.histories.get(run.id, [])[-rows:]

    def first_history(self, run: RunInfo, rows: int = 3) -> list[dict[str, Any]]:
        return self.histories.get(run.id, [])[:rows]


class MainRuns:
    """The base branch's runs, newest first."""

    def __init__(self, runs: list[RunInfo], store: Store, printed: dict[str, list[dict[str, Any]]] | None = None):
        self._runs = runs
        self.store = store
        self.printed = printed or {}

    def runs(self, branch: str | None = None, state: str | None = None) -> list[RunInfo]:
        return [r for r in self._runs if state is None or r.state == state]

    def console_loss_rows(self, run: RunInfo) -> list[dict[str, Any]]:
        return self.printed.get(run.id, [])


def losses(*values: float) -> list[dict[str, Any]]:
    return [{"_step": i, "loss": v} for i, v in enumerate(values)]


LEARNT = losses(2.3, 1.0, 0.5, 0.3)


def test_the_newest_finished_run_that_learnt_is_the_baseline():
    runs = [
        RunInfo(id="running", state="running"),
        RunInfo(id="crashed", state="crashed"),
        RunInfo(id="exploded", state="finished"),
        RunInfo(id="good", state="finished"),
        RunInfo(id="older", state="finished"),
    ]
    store = Store({"exploded": losses(2.3, 9.0, 30.0), "good": LEARNT, "older": LEARNT})
    found = find_baseline(MainRuns(runs, store), "main")
    assert found == Baseline("good", "main", LEARNT, [])
    assert found is not None and found.label == "main's run good"
    assert store.reads == ["exploded", "good"], "read until one learnt"


def test_no_baseline_without_a_finished_run_that_learnt_among_the_newest():
    store = Store({f"bad{i}": losses(2.3, 9.0, 30.0) for i in range(CANDIDATES)} | {"good": LEARNT})
    runs = [RunInfo(id=f"bad{i}", state="finished") for i in range(CANDIDATES)] + [RunInfo(id="good", state="finished")]
    assert find_baseline(MainRuns(runs, store), "main") is None
    assert len(store.reads) == CANDIDATES, "a few runs read at most"
    assert find_baseline(MainRuns([], Store({})), "main") is None


def test_a_run_logging_no_loss_is_no_baseline_but_one_that_printed_its_loss_is():
    runs = [RunInfo(id="acc", state="finished")]
    store = Store({"acc": [{"_step": 0, "acc": 0.5}]})
    assert find_baseline(MainRuns(runs, store), "main") is None
    printed = {"acc": [{"_step": i, "loss": v} for i, v in enumerate([2.3, 1.0, 0.5])]}
    found = find_baseline(MainRuns(runs, store, printed), "main")
    assert found is not None and found.printed == printed["acc"]


def test_a_launch_record_without_a_wandb_run_is_read_from_its_console_only():
    runs = [RunInfo(id="plain", state="finished", source="launcher")]
    store = Store({})
    found = find_baseline(MainRuns(runs, store, {"plain": losses(2.3, 1.0)}), "main")
    assert found is not None and found.rows == [] and store.reads == []


def test_runs_that_cannot_be_read_mean_no_baseline_not_an_error():
    runs = [RunInfo(id="good", state="finished")]
    assert find_baseline(MainRuns(runs, Store({"good": LEARNT}, broken=True)), "main") is None
