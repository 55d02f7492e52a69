"""Start a branch's job: refuse while one runs, then worktree, launch record, launcher."""

from __future__ import annotations

import time
from dataclasses import replace

from bot.core.errors import BadInput, OperationFailed
from bot.launchers import ACTIVE_STATES, active_runs, refresh_run, start_run
from bot.loop.progress import OnPoll, Poll, ignore_poll
from bot.loop.repo_context import RepoContext
from bot.store.runs import RunRecord, new_run_id

SETTLE_S = 10.0


def launch_branch(ctx: RepoContext, branch: str, *, pull: bool = True, run_id: str | None = None) -> RunRecord:
    """Launch the branch's job with its configured backend; refuse while one is running."""
    active = active_runs(ctx.state, ctx.settings, repo=ctx.key, branch=branch)
    if active:
        raise OperationFailed(f"a run of branch '{branch}' is already {active[0].state}: {active[0].id}")
    worktree = ctx.workspace.worktree(branch, pull=pull)
    config = ctx.reload_config(branch)
    run_id = run_id or new_run_id()
    return start_run(
        ctx.state,
        ctx.settings,
        config,
        repo=ctx.key,
        branch=branch,
        commit=ctx.workspace.head(branch),
        worktree=worktree,
        run_id=run_id,
        env=_run_env(ctx, run_id),
    )


def _run_env(ctx: RepoContext, run_id: str) -> dict[str, str]:
    # The W&B run takes the record's id, so the bot finds it again whatever the script does.
    env = {"WANDB_RUN_ID": run_id}
    if not ctx.settings.online_wandb:
        # wandb-core writes an offline run's file every 15 s by default; the bot watches
        # early steps, so ask for a write every second.
        env["WANDB__TRANSACTION_LOG_FLUSH_INTERVAL"] = "1"
    return env


def wait_for(
    ctx: RepoContext,
    record: RunRecord,
    *,
    poll: float = 1.0,
    timeout: float | None = None,
    on_poll: OnPoll = ignore_poll,
) -> RunRecord:
    """Block until the run ends (or `timeout` seconds pass) and return its record, judged: a
    run whose loss went non-finite or exploded failed, whatever its exit code."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while (record := refresh_run(ctx.state, ctx.settings, record)).state in ACTIVE_STATES:
        on_poll(Poll(record.id, record.state))
        if deadline is not None and time.monotonic() > deadline:
            return record
        time.sleep(poll)
    _settle(ctx, record)
    return judged(ctx, record)


def judged(ctx: RepoContext, record: RunRecord) -> RunRecord:
    """A finished record as `failed` when the run's loss says so, with the reason as its
    `end_reason` (not stored: the record keeps what the process did)."""
    if record.state != "finished":
        return record
    run = ctx.runs(record.branch).get(record.id)
    if run.loss_problem is None:
        return record
    return replace(record, state="failed", handle={**record.handle, "end_reason": run.loss_problem})


def _settle(ctx: RepoContext, record: RunRecord, timeout: float = SETTLE_S) -> None:
    """The job has exited, but W&B's own process may still be writing the run's last records
    (history, exit code): give it a moment, so what is read next is the whole run."""
    store = ctx.runs(record.branch).store
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if store.get(record.wandb_run_id or record.id).state not in ACTIVE_STATES:
                return
        except BadInput:
            return  # no W&B run: the script ended before wandb.init, or does not log
        time.sleep(0.2)
