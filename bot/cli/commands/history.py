"""`history`: the last logged rows of the branch's latest run."""

from __future__ import annotations

import argparse

from bot.cli import output
from bot.cli.target import open_target
from bot.core.errors import BadInput
from bot.core.settings import Settings


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.rows < 1:
        raise BadInput("--rows must be at least 1")
    ctx, branch = open_target(args, settings)
    runs = ctx.runs(branch)
    latest = runs.latest(branch)
    rows = runs.history(latest, args.rows)
    if args.json:
        output.print_json({"run": latest.to_json(), "rows": rows}, settings)
        return 0
    print(f"run {latest.id} ({latest.state}, {latest.steps} steps)")
    output.print_text(output.table(rows), settings)
    return 0
