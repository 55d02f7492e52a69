"""The command line's grammar: every command, its flags, its help text and the environment it reads."""

from __future__ import annotations

import argparse
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from bot.app.jobs import JobStatus
from bot.cli.environment import epilog

EXIT_STATUS = "exit status: 0 success, 1 the operation ran and failed, 2 bad usage or input"
STATES = ["running", "failed", "finished", "crashed", "killed", "queued"]


def package_version() -> str:
    try:
        return version("fix-and-relaunch")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


class _Help(argparse.RawDescriptionHelpFormatter):
    """Keeps the environment table's lines as written."""


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
        "watch its first steps. Run it in your clone: --repo defaults to the current folder and "
        f"--branch to the branch checked out there. {EXIT_STATUS}.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, epilog=epilog(name), formatter_class=_Help)

    p = command("serve", "run the webhook server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)

    p = command("register-app", "register the GitHub App from app.yml through GitHub's manifest flow, then exit")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--org", help="register the App under this organisation (default: your user account)")

    p = command("jobs", "the server's jobs in the state directory: list, show or cancel them")
    jobs = p.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    q = jobs.add_parser("list", help="the newest jobs, newest first")
    q.add_argument("--status", choices=[s.value for s in JobStatus])
    q.add_argument("--limit", type=int, default=50)
    _json(q)
    q = jobs.add_parser("show", help="one job: its request, steps, error and LLM cost")
    q.add_argument("id", type=int)
    _json(q)
    q = jobs.add_parser("cancel", help="cancel a queued job, or stop a running one at its next step")
    q.add_argument("id", type=int)

    p = command("launch", "start the branch's job with its configured backend")
    _repo_branch(p)
    p.add_argument("--wait", action="store_true", help="block until the run ends; exit 0 only on success")
    _sandbox(p)
    _quiet(p)
    _json(p)

    p = command("diagnose", "diagnose the branch's latest run (if it failed), an older one, or a log file")
    _repo_branch(p)
    p.add_argument("--run", metavar="ID", help="an older run of the branch, by id (default: the latest)")
    p.add_argument("--log", type=Path, help="diagnose this log file alone")
    _json(p)

    p = command("history", "last logged history rows of the branch's latest run")
    _repo_branch(p)
    p.add_argument("--rows", type=int, default=10)
    _json(p)

    p = command("runs", "runs known to the bot: id, branch, state, steps, started, commit, backend")
    p.add_argument("--repo", type=Path, default=Path("."), help="the experiment repo (default: .)")
    p.add_argument("--branch", help="only this branch's runs (default: every branch)")
    p.add_argument("--state", choices=STATES)
    _json(p)

    p = command("delete-run", "delete the branch's latest failed run")
    _repo_branch(p)

    p = command("fix", "diagnose, fix, push, report, relaunch and verify the branch's latest run, once")
    _repo_branch(p)
    p.add_argument("--run", metavar="ID", help="fix an older failed run of the branch (default: the latest run)")
    p.add_argument("--dry-run", action="store_true", help="show the diagnosis and proposed patch; change nothing")
    p.add_argument("--no-relaunch", action="store_true", help="commit and push the fix but do not relaunch")
    p.add_argument("--hint", help="a hint for the fixer, as in a /fix-and-relaunch comment")
    _sandbox(p)
    _quiet(p)
    _json(p)

    p = command("check-config", "check .github/fix-and-relaunch.yml and report every problem at once")
    p.add_argument("--repo", type=Path, default=Path("."), help="the experiment repo (default: .)")
    p.add_argument(
        "--branch", help="check the file as committed on this branch (default: the file in your checkout, as it is)"
    )
    p.add_argument("--schema", action="store_true", help="print the file's JSON Schema (for editors) and exit")
    _json(p)

    p = command("demo", "build a sample experiment repo with a crashing branch and fix it, offline")
    p.add_argument("--dir", type=Path, help="where to build it (default: a new temporary folder)")

    p = command("wandb-setup", "create the W&B automation that alerts the bot on failed runs")
    p.add_argument("--entity", required=True)
    p.add_argument("--project", required=True)
    p.add_argument("--url", required=True, help="the bot's public /webhooks/wandb URL")
    return parser


def _repo_branch(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repo", type=Path, default=Path("."), help="the experiment repo (default: .)")
    p.add_argument("--branch", help="the experiment branch (default: the branch checked out in --repo)")
    p.add_argument(
        "--base",
        metavar="BRANCH",
        help="what the branch is compared with, as its pull request's base (default: the remote's default branch)",
    )


def _quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON on stdout (progress, if any, stays on stderr)")
