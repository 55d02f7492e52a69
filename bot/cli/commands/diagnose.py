"""`diagnose`: a branch's latest failed run (config, summary, history, log tail, verdict), or a log file."""

from __future__ import annotations

import argparse

from bot.cli import output
from bot.core.errors import BadInput
from bot.core.settings import Settings
from bot.diagnosis import diagnose_lines, tail_lines
from bot.loop.inspect import inspect_latest_failed
from bot.loop.repo_context import RepoContext

LOG_LINES = 400


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.log is not None:
        return _log_file(args, settings)
    if not args.branch:
        raise BadInput("diagnose needs --branch (or --log FILE)")
    ctx = RepoContext.open(settings, args.repo)
    found = inspect_latest_failed(ctx, args.branch)
    output.print_json(found.to_json(), settings) if args.json else print(output.inspection(found))
    return 0


def _log_file(args: argparse.Namespace, settings: Settings) -> int:
    if not args.log.is_file():
        raise BadInput(f"no such log file: {args.log}")
    diagnosis = diagnose_lines(tail_lines(args.log, LOG_LINES), extra_secrets=settings.secrets())
    output.print_json(diagnosis.to_json(), settings) if args.json else print(diagnosis.text())
    return 0
