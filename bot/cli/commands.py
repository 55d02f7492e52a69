"""One function per command: open what it needs, call the module that does the work, print."""
from __future__ import annotations

import argparse
import hashlib
import sys
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

from bot.cli.main import print_json
from bot.core.settings import Settings
from bot.loop.repo_context import RepoContext
from bot.core.errors import BadInput, OperationFailed
from bot.core.locks import exclusive
from bot.runs.model import FAILED_STATES
from bot.cli import render
from bot.loop.inspect import inspect_latest_failed


def diagnose(args: argparse.Namespace, settings: Settings) -> int:
    from bot.diagnosis import diagnose_lines, tail_lines

    if args.log is not None:
        if not args.log.is_file():
            raise BadInput(f"no such log file: {args.log}")
        diagnosis = diagnose_lines(tail_lines(args.log, 400), extra_secrets=settings.secrets())
        print_json(diagnosis.to_json()) if args.json else print(render.diagnosis(diagnosis))
        return 0
    if not args.branch:
        raise BadInput("diagnose needs --branch (or --log FILE)")
    ctx = RepoContext.open(settings, args.repo)
    report = inspect_latest_failed(ctx, args.branch)
    print_json(report.to_json()) if args.json else print(render.inspection(report))
    return 0


def history(args: argparse.Namespace, settings: Settings) -> int:
    if args.rows < 1:
        raise BadInput("--rows must be at least 1")
    ctx = RepoContext.open(settings, args.repo)
    runs = ctx.runs(args.branch)
    run = runs.latest(args.branch)
    rows = runs.history(run, args.rows)
    if args.json:
        print_json({"run": run.to_json(), "rows": rows})
    else:
        print(f"run {run.id} ({run.state}, {run.steps} steps)")
        print(render.table(rows))
    return 0


def runs(args: argparse.Namespace, settings: Settings) -> int:
    ctx = RepoContext.open(settings, args.repo)
    found = ctx.runs(args.branch).runs(args.branch, state=args.state)
    if args.json:
        print_json([run.to_json() for run in found])
    else:
        print(render.runs_table(found))
    return 0


def delete_run(args: argparse.Namespace, settings: Settings) -> int:
    ctx = RepoContext.open(settings, args.repo)
    runs = ctx.runs(args.branch)
    failed = [run for run in runs.runs(args.branch) if run.state in FAILED_STATES]
    if not failed:
        raise BadInput(f"branch '{args.branch}' has no failed run to delete")
    runs.delete(failed[0])
    print(f"deleted run {failed[0].id} ({failed[0].state})")
    return 0


def launch(args: argparse.Namespace, settings: Settings) -> int:
    from bot.loop.launch import launch_branch, wait_for

    ctx = RepoContext.open(settings, args.repo)
    record = launch_branch(ctx, args.branch)
    if not args.json:
        print(f"launched run {record.id} of {args.branch} ({record.backend}); log: {record.log_path}")
    if args.wait:
        record = wait_for(ctx, record)
        if not args.json:
            print(f"run {record.id} {record.state} (exit code {record.exit_code})")
    if args.json:
        print_json(record.to_json())
    return 0 if not args.wait or record.state == "finished" else 1


def fix(args: argparse.Namespace, settings: Settings) -> int:
    from bot.loop.model import FixRequest
    from bot.loop.pipeline import Pipeline

    ctx = RepoContext.open(settings, args.repo)
    progress = (lambda line: print(f"· {line}", file=sys.stderr)) if not args.json else None
    request = FixRequest(branch=args.branch, dry_run=args.dry_run, relaunch=not args.no_relaunch, hint=args.hint)
    with fix_lock(settings, ctx, args.branch) as steps_path:
        if args.dry_run:
            outcome = Pipeline(ctx, progress=progress).run(request)
        else:
            outcome = _resumable_fix(ctx, request, steps_path, progress)
    if args.json:
        print_json(outcome.to_json())
    else:
        print(outcome.comment)
    return 1 if outcome.action == "gave_up" else 0


def _resumable_fix(ctx: RepoContext, request, steps_path: Path, progress):
    """A `fix` that was killed resumes from its step log, so running the command again never
    commits, pushes or launches twice what the last run did. A log that records nothing begun
    (stopped while diagnosing) is stale: the latest run may have changed. A fix that ended with
    an error starts afresh next time; a fix it committed but could not push is found on the
    branch and pushed then, not made twice."""
    from bot.loop.journal import StepLog
    from bot.loop.pipeline import Pipeline

    steps = StepLog.in_file(steps_path)
    if not steps.started():
        steps_path.unlink(missing_ok=True)
        steps = StepLog.in_file(steps_path)
    try:
        return Pipeline(ctx, steps=steps, progress=progress).run(request)
    finally:
        if not isinstance(sys.exc_info()[1], KeyboardInterrupt):
            steps_path.unlink(missing_ok=True)


@contextmanager
def fix_lock(settings: Settings, ctx: RepoContext, branch: str) -> Iterator[Path]:
    """One `fix` of a repo+branch at a time; yields where its step log lives."""
    name = hashlib.sha256(f"{ctx.key}\0{branch}".encode()).hexdigest()[:16]
    folder = settings.state_dir / "fix-steps"
    folder.mkdir(parents=True, exist_ok=True)
    with ExitStack() as held:
        try:
            held.enter_context(exclusive(folder / f"{name}.lock", wait=False))
        except BlockingIOError:
            raise OperationFailed(f"another fix of branch '{branch}' is running") from None
        yield folder / f"{name}.json"


def demo(args: argparse.Namespace, settings: Settings) -> int:
    from bot.demo.run import run_demo

    return run_demo(settings, args.dir)


def serve(args: argparse.Namespace, settings: Settings) -> int:
    """The composer: the server gets the request side of each webhook from `handlers`."""
    import handlers
    from bot.app.server import run

    run(settings, args.host, args.port, router=handlers.router, wandb_handler=handlers.wandb.handle)
    return 0


def wandb_setup(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app.wandb_setup import create_automation

    print(create_automation(settings, entity=args.entity, project=args.project, url=args.url))
    return 0


COMMANDS = {
    "diagnose": diagnose, "history": history, "runs": runs, "delete-run": delete_run,
    "launch": launch, "fix": fix, "demo": demo, "serve": serve, "wandb-setup": wandb_setup,
}
