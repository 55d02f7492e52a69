"""`delete-run`: the branch's latest failed run goes (never a running or successful one)."""

from __future__ import annotations

import argparse

from bot.cli.target import branch_of
from bot.core.errors import BadInput
from bot.core.settings import Settings
from bot.loop.repo_context import RepoContext
from bot.runs.model import FAILED_STATES


def run(args: argparse.Namespace, settings: Settings) -> int:
    ctx = RepoContext.open(settings, args.repo)
    branch = branch_of(args)
    runs = ctx.runs(branch)
    failed = [r for r in runs.runs(branch) if r.state in FAILED_STATES]
    if not failed:
        raise BadInput(f"branch '{branch}' has no failed run to delete")
    runs.delete(failed[0])
    print(f"deleted run {failed[0].id} ({failed[0].state})")
    return 0
