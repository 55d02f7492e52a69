"""`runs`: the runs the bot knows, launched ones and the run store's, newest first."""

from __future__ import annotations

import argparse

from bot.cli import output
from bot.core.settings import Settings
from bot.loop.repo_context import RepoContext


def run(args: argparse.Namespace, settings: Settings) -> int:
    ctx = RepoContext.open(settings, args.repo)
    found = ctx.runs(args.branch).runs(args.branch, state=args.state)
    if args.json:
        output.print_json([r.to_json() for r in found], settings)
        return 0
    backends = {record.id: record.backend for record in ctx.state.list_runs(repo=ctx.key, branch=args.branch)}
    output.print_text(output.runs_table(found, backends), settings)
    return 0
