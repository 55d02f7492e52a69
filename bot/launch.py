"""Start a branch's job: worktree, launch record, launcher, in that order."""
from __future__ import annotations

import time

from bot.context import RepoContext
from bot.errors import OperationFailed
from bot.launchers.base import ACTIVE_STATES, LaunchSpec
from bot.state import RunRecord, new_run_id


def launch_branch(ctx: RepoContext, branch: str, *, pull: bool = True) -> RunRecord:
    """Launch the branch's job with its configured backend; refuse while one is running."""
    runs = ctx.runs(branch)
    active = [r for r in ctx.state.list_runs(repo=ctx.key, branch=branch, state=ACTIVE_STATES)
              if runs.refresh(r).state in ACTIVE_STATES]
    if active:
        raise OperationFailed(f"a run of branch '{branch}' is already {active[0].state}: {active[0].id}")
    worktree = ctx.workspace.worktree(branch, pull=pull)
    config = ctx.reload_config(branch)
    launch = config["launch"]
    run_id = new_run_id()
    log_path = ctx.settings.state_dir / "logs" / run_id / "output.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    commit = ctx.workspace.head(branch)
    record = ctx.state.add_run(id=run_id, repo=ctx.key, branch=branch, commit=commit,
                               backend=launch["backend"], log_path=str(log_path))
    spec = LaunchSpec(repo=ctx.key, branch=branch, commit=commit, worktree=worktree,
                      command=launch["command"], setup=launch["setup"], log_path=log_path,
                      run_id=run_id, env=_run_env(ctx, branch, run_id))
    try:
        handle = ctx.launcher(launch["backend"], config).launch(spec)
    except Exception:
        ctx.state.update_run(run_id, state="failed", ended_at=time.time())
        raise
    return ctx.state.update_run(record.id, handle=handle, state="running", started_at=time.time(),
                                wandb_run_id=run_id)


def _run_env(ctx: RepoContext, branch: str, run_id: str) -> dict[str, str]:
    # The W&B run takes the record's id, so the bot can find it again whatever the script does.
    env = {"WANDB_RUN_ID": run_id}
    if not ctx.settings.online_wandb:
        env["WANDB_MODE"] = "offline"
        # wandb-core writes an offline run's file every 15 s by default; the bot watches
        # early steps, so ask for a write every second.
        env["WANDB__TRANSACTION_LOG_FLUSH_INTERVAL"] = "1"
    return env


def wait_for(ctx: RepoContext, record: RunRecord, *, poll: float = 1.0,
             timeout: float | None = None) -> RunRecord:
    """Block until the run ends (or `timeout` seconds pass) and return its record."""
    runs = ctx.runs(record.branch)
    deadline = None if timeout is None else time.monotonic() + timeout
    while (record := runs.refresh(record)).state in ACTIVE_STATES:
        if deadline is not None and time.monotonic() > deadline:
            break
        time.sleep(poll)
    return record
