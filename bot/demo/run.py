"""`fix-and-relaunch demo`: the whole workflow on a sample repo, offline, narrated."""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

from bot.core.errors import BadInput
from bot.core.settings import Settings
from bot.demo import sample_repo
from bot.loop.inspect import inspect_latest_failed
from bot.loop.launch import launch_branch, wait_for
from bot.loop.model import FixRequest
from bot.loop.pipeline import Pipeline
from bot.loop.repo_context import RepoContext


def say(line: str) -> None:
    print(line, flush=True)


def run_demo(settings: Settings, where: Path | None) -> int:
    root = Path(where or tempfile.mkdtemp(prefix="fix-and-relaunch-demo-")).resolve()
    if root.exists() and any(root.iterdir()):
        raise BadInput(f"{root} is not empty: give demo a new or empty --dir")
    root.mkdir(parents=True, exist_ok=True)
    # Offline on purpose, with its state beside the sample repo so the demo leaves nothing else.
    settings = dataclasses.replace(settings, wandb_api_key=None, anthropic_api_key=None, state_dir=root / "state")
    say(f"1. Building a sample experiment repo in {root}")
    repo = sample_repo.build(root, python=sys.executable)
    branch = sample_repo.BRANCH
    ctx = RepoContext.open(settings, repo)

    say(f"2. Launching branch '{branch}' (learning rate raised a hundredfold)")
    record = wait_for(ctx, launch_branch(ctx, branch), poll=0.5, timeout=300)
    say(f"   run {record.id} ended: {record.state} (exit code {record.exit_code})")

    say("3. Diagnosing it")
    inspection = inspect_latest_failed(ctx, branch)
    say(_indent(inspection.diagnosis.text()))

    say("4. Fixing, pushing, relaunching and verifying")
    outcome = Pipeline(ctx, progress=lambda line: say(f"   · {line}"), poll=0.5).run(FixRequest(branch=branch))
    say("5. The report the bot posts on the pull request:\n")
    say(_indent(outcome.comment))
    say(
        f"Outcome: {outcome.action}, verified: {outcome.verified}, commits: "
        f"{', '.join(c[:8] for c in outcome.commits) or 'none'}"
    )
    say(
        f"Look around: cd {repo} && git log --oneline origin/{branch}; "
        f"FIX_AND_RELAUNCH_STATE_DIR={settings.state_dir} fix-and-relaunch runs --repo {repo}"
    )
    return 0 if outcome.verified else 1


def _indent(text: str) -> str:
    return "\n".join(f"   {line}" for line in text.splitlines())
