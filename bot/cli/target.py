"""Which repository and branch a command acts on: `--repo` (default: the current folder) and
`--branch` (default: the branch checked out there), as a researcher in their clone expects, and
what the branch is compared with: `--base` (default: the remote's default branch)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.core.errors import BadInput
from bot.core.settings import Settings
from bot.loop.branch_runs import BranchRuns
from bot.loop.repo_context import RepoContext
from bot.repo.git import git
from bot.runs.model import RunInfo


def open_target(args: argparse.Namespace, settings: Settings) -> tuple[RepoContext, str]:
    """The repository and the branch the command acts on, compared with `--base` when given (a
    stacked experiment's parent, as its pull request would say)."""
    ctx = RepoContext.open(settings, args.repo)
    branch = branch_of(args)
    if args.base:
        ctx.workspace.set_base_branch(branch, str(args.base))
        if ctx.workspace.base_branch(branch) != args.base:  # not a branch here: not silently main
            raise BadInput(f"--base {args.base}: not another branch of {ctx.repo}, here or on its remote")
    return ctx, branch


def branch_of(args: argparse.Namespace) -> str:
    """`--branch`, else the branch checked out in `--repo`; BadInput when there is none."""
    if args.branch:
        return str(args.branch)
    branch = current_branch(Path(args.repo))
    if branch is None:
        raise BadInput(
            f"{Path(args.repo).resolve()} is not on a branch (a detached HEAD, or not a git checkout): give --branch"
        )
    return branch


def current_branch(folder: Path) -> str | None:
    """The branch checked out in the checkout `folder` belongs to, if any."""
    if not folder.is_dir():
        return None
    head = git(folder, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    if not head.ok:
        return None
    return head.out.strip() or None


def pick_run(runs: BranchRuns, branch: str, run_id: str | None) -> RunInfo:
    """The branch's latest run, or the run `run_id`, which must be one of the branch's."""
    if run_id is None:
        return runs.latest(branch)
    run = runs.get(run_id)
    if run.branch != branch and run_id not in {r.id for r in runs.runs(branch)}:
        raise BadInput(f"run {run_id} is a run of {run.branch or 'another branch'}, not of {branch}")
    return run
