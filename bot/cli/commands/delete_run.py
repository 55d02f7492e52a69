"""`delete-run`: the branch's latest failed run goes (never a running or successful one)."""

from __future__ import annotations

import argparse

from bot.cli.target import open_target
from bot.core.errors import BadInput
from bot.core.settings import Settings
from bot.runs.model import FAILED_STATES


def run(args: argparse.Namespace, settings: Settings) -> int:
    ctx, branch = open_target(args, settings)
    runs = ctx.runs(branch)
    failed = [r for r in runs.runs(branch) if r.state in FAILED_STATES]
    if not failed:
        raise BadInput(f"branch '{branch}' has no failed run to delete")
    runs.delete(failed[0])
    print(f"deleted run {failed[0].id} ({failed[0].state})")
    return 0
