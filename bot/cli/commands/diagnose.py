"""`diagnose`: the branch's latest run when it failed (config, summary, history, log tail,
verdict), an older run with `--run`, or a log file."""

from __future__ import annotations

import argparse

from bot.cli import output
from bot.cli.target import open_target, pick_run
from bot.core.errors import BadInput
from bot.core.settings import Settings
from bot.diagnosis import diagnose_lines, tail_lines
from bot.loop.inspect import inspect_run

LOG_LINES = 400


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.log is not None:
        return _log_file(args, settings)
    ctx, branch = open_target(args, settings)
    runs = ctx.runs(branch)
    target = runs.judged(pick_run(runs, branch, args.run))  # failed by its state, or by its loss
    if args.run is None and not target.failed:
        return _did_not_fail(args, settings, branch, target.to_json())
    found = inspect_run(ctx, branch, target)
    output.print_json(found.to_json(), settings) if args.json else print(output.inspection(found))
    return 0


def _did_not_fail(args: argparse.Namespace, settings: Settings, branch: str, run: dict) -> int:
    summary = (
        f"the latest run of {branch}, {run['id']}, is {run['state']} after {run['steps']} steps: "
        "nothing to diagnose (--run ID diagnoses an older run)"
    )
    if args.json:
        output.print_json({"category": None, "retryable": False, "summary": summary, "run": run}, settings)
    else:
        print(summary)
    return 0


def _log_file(args: argparse.Namespace, settings: Settings) -> int:
    if not args.log.is_file():
        raise BadInput(f"no such log file: {args.log}")
    diagnosis = diagnose_lines(tail_lines(args.log, LOG_LINES), extra_secrets=settings.secrets())
    output.print_json(diagnosis.to_json(), settings) if args.json else print(diagnosis.text())
    return 0
