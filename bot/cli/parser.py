"""The command line's grammar: every command, its flags and its help text."""

from __future__ import annotations

import argparse
from pathlib import Path


def _repo_branch(p: argparse.ArgumentParser, *, branch_required: bool = True) -> None:
    p.add_argument("--repo", type=Path, default=Path("."), help="the experiment repo (default: .)")
    p.add_argument("--branch", required=branch_required, help="the experiment branch")


def _sandbox(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--sandbox",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the repository's code in the sandbox, or not (default: the repo config's launch.sandbox; "
        "auto is off on the command line)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fix-and-relaunch",
        description="Diagnose a branch's failed training run, fix the branch, relaunch the job and "
        "watch its first steps. Exit status: 0 success, 1 the operation failed, 2 bad input.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the webhook server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)

    p = sub.add_parser("launch", help="start the branch's job with its configured backend")
    _repo_branch(p)
    p.add_argument("--wait", action="store_true", help="block until the run ends; exit 0 only on success")
    p.add_argument("--json", action="store_true")
    _sandbox(p)

    p = sub.add_parser("diagnose", help="diagnose the branch's latest failed run, or a log file")
    _repo_branch(p, branch_required=False)
    p.add_argument("--log", type=Path, help="diagnose this log file alone")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("history", help="last logged history rows of the branch's latest run")
    _repo_branch(p)
    p.add_argument("--rows", type=int, default=10)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("runs", help="runs known to the bot")
    _repo_branch(p, branch_required=False)
    p.add_argument("--state", choices=["running", "failed", "finished", "crashed", "killed", "queued"])
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("delete-run", help="delete the branch's latest failed run")
    _repo_branch(p)

    p = sub.add_parser("fix", help="diagnose, fix, push, report, relaunch and verify, once")
    _repo_branch(p)
    p.add_argument("--dry-run", action="store_true", help="show the diagnosis and proposed patch; change nothing")
    p.add_argument("--no-relaunch", action="store_true", help="commit and push the fix but do not relaunch")
    p.add_argument("--hint", help="a hint for the fixer, as in a /fix-and-relaunch comment")
    p.add_argument("--json", action="store_true")
    _sandbox(p)

    p = sub.add_parser("demo", help="build a sample experiment repo with a crashing branch and fix it, offline")
    p.add_argument("--dir", type=Path, help="where to build it (default: a new temporary folder)")

    p = sub.add_parser("wandb-setup", help="create the W&B automation that alerts the bot on failed runs")
    p.add_argument("--entity", required=True)
    p.add_argument("--project", required=True)
    p.add_argument("--url", required=True, help="the bot's public /webhooks/wandb URL")
    return parser
