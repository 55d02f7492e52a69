"""`fix`: the whole loop once, as the bot would run it; a killed `fix` resumes where it stopped."""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bot.cli import output
from bot.core.errors import OperationFailed
from bot.core.locks import exclusive
from bot.core.settings import Settings
from bot.loop.journal import StepLog
from bot.loop.model import Action, FixRequest, Outcome
from bot.loop.pipeline import Pipeline
from bot.loop.repo_context import RepoContext

Progress = Callable[[str], None]


def run(args: argparse.Namespace, settings: Settings) -> int:
    settings = settings.with_sandbox(choice=args.sandbox)
    ctx = RepoContext.open(settings, args.repo)
    progress = None if args.json else output.progress_printer(settings)
    request = FixRequest(branch=args.branch, dry_run=args.dry_run, relaunch=not args.no_relaunch, hint=args.hint)
    with fix_lock(settings, ctx, args.branch) as steps_path:
        if args.dry_run:
            outcome = Pipeline(ctx, progress=progress).run(request)
        else:
            outcome = _resumable_fix(ctx, request, steps_path, progress)
    if args.json:
        output.print_json(outcome.to_json(), settings)
    else:
        print(outcome.comment)
    return 1 if outcome.action == Action.GAVE_UP else 0


def _resumable_fix(ctx: RepoContext, request: FixRequest, steps_path: Path, progress: Progress | None) -> Outcome:
    """A `fix` that was killed resumes from its step log, so running the command again never
    commits, pushes or launches twice what the last run did. A log that records nothing begun
    (stopped while diagnosing) is stale: the latest run may have changed. A fix that ended with
    an error starts afresh next time; a fix it committed but could not push is found on the
    branch and pushed then, not made twice."""
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
