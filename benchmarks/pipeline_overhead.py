"""The pipeline's own overhead for a rule fix: diagnose + decide + patch + validate + branch doc
+ commit + push + report, without the training runs (the failed run exists beforehand; no
relaunch). Real git with a bare origin, the real local launcher for the failed run.

    python benchmarks/pipeline_overhead.py [REPEATS]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.core.settings import Settings
from bot.demo import sample_repo
from bot.loop.launch import launch_branch, wait_for
from bot.loop.model import FixRequest
from bot.loop.pipeline import Pipeline
from bot.loop.repo_context import RepoContext


def failed_repo(root: Path, settings: Settings) -> RepoContext:
    clone = sample_repo.build(root, python=sys.executable)
    ctx = RepoContext.open(settings, clone)
    record = wait_for(ctx, launch_branch(ctx, sample_repo.BRANCH), poll=0.05)
    assert record.state == "failed", record
    return RepoContext.open(settings, clone)  # a fresh context, as a new command would have


def main(repeats: int) -> None:
    os.environ["WANDB_MODE"] = "disabled"  # the failed run's W&B logging is not what is measured
    totals, diagnoses = [], []
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env({"FIX_AND_RELAUNCH_STATE_DIR": f"{tmp}/state", "HOME": tmp})
        for i in range(repeats):
            ctx = failed_repo(Path(tmp) / f"r{i}", settings)
            start = time.perf_counter()
            outcome = Pipeline(ctx).run(FixRequest(branch=sample_repo.BRANCH, relaunch=False))
            totals.append(time.perf_counter() - start)
            assert outcome.action == "patched" and outcome.commits, outcome.reason
            diagnoses.append(_diagnose_time(ctx))
    print(
        f"rule fix, diagnose → push, no runs ({repeats} repos): median {statistics.median(totals) * 1000:.0f} ms, "
        f"min {min(totals) * 1000:.0f} ms, max {max(totals) * 1000:.0f} ms"
    )
    print(f"  of which diagnosis alone (log tail + classify): median {statistics.median(diagnoses) * 1000:.1f} ms")


def _diagnose_time(ctx: RepoContext) -> float:
    from bot.diagnosis import diagnose_lines

    runs = ctx.runs(sample_repo.BRANCH)
    failed = next(r for r in runs.runs(sample_repo.BRANCH) if r.state == "failed")
    start = time.perf_counter()
    diagnose_lines(runs.log_tail(failed, 200), history=runs.history(failed, 20))
    return time.perf_counter() - start


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
