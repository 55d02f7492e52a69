"""`check-config`: `.github/fix-and-relaunch.yml` checked against the model `fix` and `launch`
use, every problem at once; `--schema` prints the model's JSON Schema for editors."""

from __future__ import annotations

import argparse
import sys

from bot.cli import output
from bot.core.settings import Settings
from bot.repo import config as repo_config
from bot.repo.local import LocalRepo


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.schema:
        sys.stdout.write(repo_config.json_schema())
        return 0
    source, text = _file(LocalRepo(args.repo), args.branch)
    problems = repo_config.check(text, source)
    if args.json:
        output.print_json({"file": source, "valid": not problems, "problems": [_json(p) for p in problems]}, settings)
    elif problems:
        print(f"{source}: {len(problems)} problem{'s' if len(problems) > 1 else ''}", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
    else:
        print(f"{source}: valid ({_summary(repo_config.parse(text, source))})")
    return 2 if problems else 0


def _file(repo: LocalRepo, branch: str | None) -> tuple[str, str]:
    """The file to check and its text: as committed on `branch` (local, else the remote's as
    last fetched), else as it is in the checkout, uncommitted edits included."""
    if branch is None:
        return repo_config.CONFIG_PATH, repo_config.read_text(repo.root)
    found = repo.run("cat-file", "blob", f"{repo.ref(branch)}:{repo_config.CONFIG_PATH}", check=False)
    return f"{branch}:{repo_config.CONFIG_PATH}", found.text() if found.ok else ""


def _summary(config: dict) -> str:
    launch, verify = config["launch"], config["verify"]
    return (
        f"backend {launch['backend']}, command {launch['command']!r}, verify {verify['min_steps']} steps "
        f"within {verify['timeout']} s, at most {config['fix']['max_attempts']} attempts"
    )


def _json(problem: repo_config.ConfigProblem) -> dict:
    return {"line": problem.line, "key": problem.path, "message": problem.message, "text": str(problem)}
