"""The failed runs of the real-repo suite, collected once for the LLM benchmarks.

Usage: python benchmarks/llm_realrepo_failures.py [--dir DIR] [--case ID ...]

For each case of tests/realrepos/cases.yaml: builds the broken experiment repo with the suite's
helpers (tests/support/realrepos.py), runs the broken branch once through the bot's own CLI
(`launch --wait`, in the job environment of .ci/install-jobenv.sh), and keeps what `diagnose
--json` says about the failed run (diagnosis, run facts, log tail) in DIR/<case>/failure.json,
beside a checkout of the broken branch (DIR/<case>/broken). A case already collected is kept.
Each run is a tiny CPU training (seconds to a minute); they run one after the other.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.cli.main import main as cli  # noqa: E402
from tests.support.git_repos import git  # noqa: E402
from tests.support.realrepos import Case, build, job_python, load_cases  # noqa: E402

DEFAULT_DIR = Path(os.environ.get("TMPDIR", "/tmp")) / "fix-and-relaunch-realrepo-failures"


def failure_path(folder: Path, case: Case) -> Path:
    return folder / case.id / "failure.json"


def broken_checkout(folder: Path, case: Case) -> Path:
    return folder / case.id / "broken"


def collect(case: Case, folder: Path, python: Path) -> Path:
    """The case's failed run, diagnosed by the bot (collected now unless it was before)."""
    target = failure_path(folder, case)
    if target.exists():
        return target
    work = folder / case.id
    work.mkdir(parents=True, exist_ok=True)
    origin, clone = build(case, work / "build", python)
    git(work, "clone", "-q", "--branch", case.branch, str(origin), str(broken_checkout(folder, case)))
    env = {
        "FIX_AND_RELAUNCH_STATE_DIR": str(work / "state"),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
    }
    with _environment(env):
        _cli("launch", "--repo", str(clone), "--branch", case.branch, "--wait", "--json")
        code, found = _cli("diagnose", "--repo", str(clone), "--branch", case.branch, "--json")
    if code != 0:
        raise SystemExit(f"{case.id}: diagnose failed: {found}")
    target.write_text(json.dumps(found, indent=1))
    return target


def _cli(*args: str) -> tuple[int, dict]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli(list(args))
    try:
        return code, json.loads(out.getvalue())
    except ValueError:
        return code, {"output": out.getvalue()}


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--case", action="append", default=[])
    args = parser.parse_args()
    python = job_python()
    if python is None:
        raise SystemExit("no job environment: run bash .ci/install-jobenv.sh")
    for case in load_cases():
        if args.case and case.id not in args.case:
            continue
        path = collect(case, args.dir, python)
        found = json.loads(path.read_text())
        print(f"{case.id:36} {found.get('category')}: {str(found.get('summary'))[:80]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
