"""`launch`: start the branch's job with its configured backend; `--wait` for its end."""

from __future__ import annotations

import argparse

from bot.cli import output
from bot.core.settings import Settings
from bot.loop.launch import launch_branch, wait_for
from bot.loop.repo_context import RepoContext


def run(args: argparse.Namespace, settings: Settings) -> int:
    settings = settings.with_sandbox(choice=args.sandbox)
    ctx = RepoContext.open(settings, args.repo)
    record = launch_branch(ctx, args.branch)
    if not args.json:
        print(f"launched run {record.id} of {args.branch} ({record.backend}); log: {record.log_path}")
    if args.wait:
        record = wait_for(ctx, record)
        if not args.json:
            print(f"run {record.id} {record.state} (exit code {record.exit_code})")
    if args.json:
        output.print_json(record.to_json(), settings)
    return 0 if not args.wait or record.state == "finished" else 1
