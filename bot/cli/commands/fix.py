"""`fix`: the whole loop once, as the bot would run it, on the branch's latest run (or `--run`);
a killed `fix` resumes where it stopped. The user's checkout is fast-forwarded to the pushed fix
when it is clean and on the branch, else the one command that takes it is printed.

Exit status: 0 when the outcome is verified, nothing needed fixing (or a dry run), or a fix was
pushed under `--no-relaunch`; 1 with the reason on stderr otherwise (gave up, not verified)."""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bot.cli import output
from bot.cli.markdown import to_terminal
from bot.cli.progress import Progress
from bot.cli.target import open_target, pick_run
from bot.core.errors import OperationFailed
from bot.core.locks import exclusive
from bot.core.settings import Settings
from bot.loop.journal import StepLog
from bot.loop.model import Action, FixRequest, Outcome
from bot.loop.pipeline import Pipeline
from bot.loop.repo_context import RepoContext
from bot.repo.user_checkout import CheckoutSync


def run(args: argparse.Namespace, settings: Settings) -> int:
    settings = settings.with_sandbox(choice=args.sandbox)
    ctx, branch = open_target(args, settings)
    if args.run is not None:
        pick_run(ctx.runs(branch), branch, args.run)  # one of the branch's runs, or BadInput
    request = FixRequest(
        branch=branch, dry_run=args.dry_run, relaunch=not args.no_relaunch, hint=args.hint, run_id=args.run
    )
    synced = None
    with (
        Progress(quiet=args.quiet, redact=output.redactor(settings)) as progress,
        fix_lock(settings, ctx, branch) as steps_path,
    ):
        progress.begin(f"fetching {branch} and opening its worktree")
        output.note_uncommitted(ctx, branch, progress.note, "the fix is")

        def pipeline(steps: StepLog | None = None) -> Pipeline:
            return Pipeline(ctx, steps=steps, progress=progress.step, on_poll=progress.poll)

        outcome = pipeline().run(request) if args.dry_run else _resumable_fix(pipeline, request, steps_path)
        if outcome.commits:
            synced = ctx.workspace.sync_checkout(branch)
    _print(args, settings, outcome, synced)
    failure = why_not_ok(outcome, request, ctx.config(branch)["verify"])
    if failure is None:
        return 0
    print(f"fix-and-relaunch: {failure}", file=sys.stderr)
    return 1


def why_not_ok(outcome: Outcome, request: FixRequest, verify: dict) -> str | None:
    """Why the fix did not end well, or None: verified, nothing to fix, a dry run, or a fix
    pushed without a relaunch (none was asked for)."""
    if outcome.action == Action.GAVE_UP:
        return f"gave up: {outcome.reason}"
    if outcome.action == Action.NONE or outcome.verified or not request.relaunch:
        return None
    run = outcome.new_run or {}
    return (
        f"not verified: the relaunched run {run.get('id')} logged {run.get('steps')} of {verify['min_steps']} steps "
        f"within {verify['timeout']} s and is {run.get('state')}; the fix is pushed, watch it with "
        f"`fix-and-relaunch runs --branch {request.branch}`"
    )


def _print(args: argparse.Namespace, settings: Settings, outcome: Outcome, synced: CheckoutSync | None) -> None:
    if args.json:
        data = outcome.to_json()
        if synced is not None:
            data["checkout"] = {"sync": str(synced.sync), "path": synced.checkout, "command": synced.command}
        output.print_json(data, settings)
        return
    output.print_text(to_terminal(outcome.comment).rstrip("\n"), settings)
    message = synced.message(cwd=Path.cwd()) if synced is not None else None
    if message:
        print(f"\n{message}")


def _resumable_fix(pipeline: Callable[[StepLog], Pipeline], request: FixRequest, steps_path: Path) -> Outcome:
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
        return pipeline(steps).run(request)
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
