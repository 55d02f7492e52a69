"""`launch`: start the branch's job with its configured backend; `--wait` for its end, with progress."""

from __future__ import annotations

import argparse

from bot.cli import output
from bot.cli.progress import Progress
from bot.cli.run_details import RunDetails
from bot.cli.target import open_target
from bot.core.settings import Settings
from bot.loop.launch import launch_branch, wait_for


def run(args: argparse.Namespace, settings: Settings) -> int:
    settings = settings.with_sandbox(choice=args.sandbox)
    ctx, branch = open_target(args, settings)
    with Progress(quiet=args.quiet, redact=output.redactor(settings)) as progress:
        progress.begin(f"fetching {branch} and launching it")
        output.note_uncommitted(ctx, branch, progress.note, "this run is")
        record = launch_branch(ctx, branch)
        if not args.json:
            progress.out(f"launched run {record.id} of {branch} ({record.backend}); log: {record.log_path}")
        if args.wait:
            record = wait_for(ctx, record, on_poll=RunDetails(ctx, branch, progress.poll))
    if args.wait and not args.json:
        print(f"run {record.id} {record.state} (exit code {record.exit_code})")
    if args.json:
        output.print_json(record.to_json(), settings)
    return 0 if not args.wait or record.state == "finished" else 1
