"""Real training repositories as experiment repos, for the real-repo suite (tests/realrepos).

`../shared/data/realrepos/<name>/upstream` holds third-party code kept as data: it is copied into
a temporary folder at test time (never into the project), prepared by its `prepare.py`, given
the team's side (`.github/fix-and-relaunch.yml`, launch scripts, docs) on `main`, and broken on
an experiment branch the way a researcher would. Jobs run with the one job environment that
`.ci/install-jobenv.sh` builds (`.jobenv/`, or `$FIX_AND_RELAUNCH_JOBENV`).

Each case in `tests/realrepos/cases.yaml` also records the reference fix, the edit a careful
human would make, so any fixer (a rule, the LLM) can be measured against it. A case whose
breakage only a comparison with the base branch's run tells (`baseline: true`) has `main`
trained once through the bot before the branch is launched (`train_baseline`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from bot.runs.console_loss import printed_losses
from bot.runs.loss import loss_key
from bot.runs.offline import read_history
from tests.support.cli import run_json
from tests.support.git_repos import commit_all, git, write_files
from tests.support.paths import REPO_ROOT, SHARED

REALREPOS = SHARED / "data" / "realrepos"
CASES = REPO_ROOT / "tests" / "realrepos" / "cases.yaml"
JOBENV_VAR = "FIX_AND_RELAUNCH_JOBENV"
ALL_VAR = "FIX_AND_RELAUNCH_ALL_REALREPOS"
DEFAULT_JOBENV = REPO_ROOT / ".jobenv"
TRAIN_TIMEOUT_S = 900


@dataclass(frozen=True)
class Edit:
    """Replace `search` (exactly once) by `replace` in `path`."""

    path: str
    search: str
    replace: str


@dataclass(frozen=True)
class Expect:
    categories: tuple[str, ...]  # any of these is a right diagnosis
    fixer: str
    changed: tuple[str, ...]  # the files the fix must change (its docs page aside)
    contains: tuple[str, ...] = ()  # "path: text" that the fixed branch must hold


@dataclass(frozen=True)
class Case:
    id: str
    repo: str
    kind: str  # missing_key | wrong_name | diverging_lr | oom | data_path | requirement
    style: str
    branch: str
    story: str
    launch: str  # the launch command, `{python}` standing for the job environment's interpreter
    expect: Expect
    reference: tuple[Edit, ...]
    main_files: dict[str, str] = field(default_factory=dict)
    branch_files: dict[str, str | None] = field(default_factory=dict)
    branch_edits: tuple[Edit, ...] = ()
    setup: str | None = None
    allowed_paths: tuple[str, ...] = ()
    min_steps: int = 2
    xfail: str | None = None
    ci: bool = False  # in the subset every run takes (see `selected`)
    baseline: bool = False  # main is trained first: the run the branch's is compared with


def load_cases(path: Path = CASES) -> list[Case]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [_case(item) for item in data["cases"]]


def _case(item: dict) -> Case:
    expect = item["expect"]
    return Case(
        id=item["id"],
        repo=item["repo"],
        kind=item["kind"],
        style=item["style"],
        branch=item["branch"],
        story=item["story"].strip(),
        launch=item["launch"],
        expect=Expect(
            categories=tuple(expect["category"] if isinstance(expect["category"], list) else [expect["category"]]),
            fixer=expect["fixer"],
            changed=tuple(expect["changed"]),
            contains=tuple(expect.get("contains", ())),
        ),
        reference=tuple(Edit(**e) for e in item["reference"]),
        main_files=item.get("main_files", {}),
        branch_files=item.get("branch_files", {}),
        branch_edits=tuple(Edit(**e) for e in item.get("branch_edits", [])),
        setup=item.get("setup"),
        allowed_paths=tuple(item.get("allowed_paths", ())),
        min_steps=item.get("min_steps", 2),
        xfail=item.get("xfail"),
        ci=bool(item.get("ci", False)),
        baseline=bool(item.get("baseline", False)),
    )


def selected(case: Case) -> bool:
    """Whether this run takes the case: the representative subset (`ci: true`, at least one
    case of each repository and each kind), or every case with FIX_AND_RELAUNCH_ALL_REALREPOS=1."""
    return case.ci or os.environ.get(ALL_VAR) == "1"


def spec(repo: str) -> dict:
    """The repo's tiny-run spec from realrepos.json (metric, trend, where its runs land)."""
    return json.loads((REALREPOS / "realrepos.json").read_text())[repo]


# --- the job environment ---------------------------------------------------------------------


def job_python() -> Path | None:
    folder = Path(os.environ.get(JOBENV_VAR) or DEFAULT_JOBENV)
    python = folder / "bin" / "python"
    return python if python.exists() else None


def require_job_python() -> Path:
    """The job environment's interpreter; skip without it (fail under CI=true, which installs it)."""
    if not REALREPOS.is_dir():
        pytest.skip(f"{REALREPOS} is absent")
    python = job_python()
    if python is None:
        message = f"no job environment at {DEFAULT_JOBENV} or ${JOBENV_VAR}: run bash .ci/install-jobenv.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return python


# --- building the experiment repo ------------------------------------------------------------


def apply_edits(root: Path, edits: tuple[Edit, ...]) -> None:
    for edit in edits:
        path = root / edit.path
        text = path.read_text(encoding="utf-8")
        assert text.count(edit.search) == 1, f"{edit.path}: the search text occurs {text.count(edit.search)} times"
        path.write_text(text.replace(edit.search, edit.replace), encoding="utf-8")


def repo_config(case: Case, python: Path) -> str:
    config: dict = {
        "launch": {"command": case.launch.format(python=python)},
        "verify": {"min_steps": case.min_steps, "timeout": TRAIN_TIMEOUT_S},
        "fix": {"max_attempts": 2},
    }
    if case.setup:
        config["launch"]["setup"] = case.setup.format(python=python)
    if case.allowed_paths:
        config["fix"]["allowed_paths"] = list(case.allowed_paths)
    return yaml.safe_dump(config, sort_keys=False)


def build(case: Case, tmp: Path, python: Path) -> tuple[Path, Path]:
    """(bare origin, clone): `main` is the prepared upstream plus the team's side, `case.branch`
    breaks it. Data the preparation makes is committed, since jobs run in git worktrees."""
    seed = tmp / "seed"
    shutil.copytree(REALREPOS / case.repo / "upstream", seed)
    subprocess.run(
        [sys.executable, str(REALREPOS / case.repo / "prepare.py"), str(seed)],
        check=True,
        capture_output=True,
    )
    patch = spec(case.repo).get("team_patch")
    if patch:
        subprocess.run(["git", "apply", str(REALREPOS / case.repo / patch)], cwd=seed, check=True)
    write_files(seed, {**case.main_files, ".github/fix-and-relaunch.yml": repo_config(case, python)})
    _ignore_run_outputs(seed)
    git(tmp, "init", "-q", "--bare", "-b", "main", str(tmp / "origin.git"))
    git(seed, "init", "-q", "-b", "main")
    git(seed, "add", "-A")
    git(seed, "add", "-f", *[p for p in ("data",) if (seed / p).is_dir()])
    git(seed, "commit", "-q", "-m", "Team setup on the upstream code")
    git(seed, "remote", "add", "origin", str(tmp / "origin.git"))
    git(seed, "push", "-q", "origin", "main")
    git(seed, "checkout", "-q", "-b", case.branch)
    write_files(seed, case.branch_files)
    apply_edits(seed, case.branch_edits)
    commit_all(seed, f"Experiment {case.branch}")
    git(seed, "push", "-q", "origin", case.branch)
    clone = tmp / "clone"
    git(tmp, "clone", "-q", str(tmp / "origin.git"), str(clone))
    return tmp / "origin.git", clone


def train_baseline(capsys: pytest.CaptureFixture[str], clone: Path, case: Case) -> None:
    """For a case with `baseline: true`: launch `main` through the bot and wait, so the branch's
    runs have a baseline (bot.loop.baseline), as a team's main has runs before an experiment."""
    if not case.baseline:
        return
    code, record = run_json(capsys, "launch", "--repo", str(clone), "--branch", "main", "--wait", "--json")
    assert code == 0, f"main, the baseline, should train: {record}"


def _ignore_run_outputs(root: Path) -> None:
    """What a team ignores: run outputs, never the code or configs."""
    ignore = root / ".gitignore"
    text = ignore.read_text() if ignore.exists() else ""
    extra = "".join(f"{p}\n" for p in ("wandb/", "out/", "output/", "runs/", "__pycache__/") if p not in text)
    ignore.write_text(text + ("\n" if text and not text.endswith("\n") else "") + extra)


# --- did the pushed code train? --------------------------------------------------------------


@dataclass
class Training:
    returncode: int
    metric: str
    series: list[float]
    log_tail: str
    source: str = "W&B history"  # or "console": the loss it printed, when its history has none

    def trend_ok(self, expect: str) -> bool:
        if len(self.series) < 2:
            return False
        k = max(1, len(self.series) // 4)
        first, last = sum(self.series[:k]) / k, sum(self.series[-k:]) / k
        return last < first if expect == "decrease" else last > first


def train_pushed(origin: Path, branch: str, case: Case, python: Path, tmp: Path) -> Training:
    """Check the branch out of the origin into a fresh folder and run its launch command there,
    as a person would: the run must end well and its metric move the right way. A loss metric
    the run's W&B history lacks is read off its console (bot.runs.console_loss), as the bot's
    verifier reads it."""
    checkout = tmp / "checkout"
    git(tmp, "clone", "-q", "--branch", branch, str(origin), str(checkout))
    # Its own wandb-core, as a person's shell would have: not this process's (WANDB_SERVICE).
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    env.update({"WANDB_MODE": "offline", "WANDB_SILENT": "true"})
    setup = case.setup.format(python=python) + " && " if case.setup else ""
    proc = subprocess.run(
        ["bash", "-c", setup + case.launch.format(python=python)],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=TRAIN_TIMEOUT_S,
    )
    metric = spec(case.repo)["metric"]
    runs = sorted(checkout.glob("**/offline-run-*/run-*.wandb"))
    rows = read_history(runs[-1].parent, rows=100_000) if runs else []
    series = [s for s in (_scalar(row[metric]) for row in rows if metric in row) if s is not None]
    output = proc.stdout + proc.stderr
    if not series and spec(case.repo)["expect"] == "decrease":
        return Training(proc.returncode, metric, printed_loss(output), output[-3000:], source="console")
    return Training(proc.returncode, metric, series, output[-3000:])


def printed_loss(output: str) -> list[float]:
    """The training loss a run printed, line by line."""
    rows: list[dict] = list(printed_losses(output))
    key = loss_key(rows)
    return [row[key] for row in rows if key in row] if key else []


def _scalar(value: object) -> float | None:
    if isinstance(value, list) and value:
        value = value[0]
    return float(value) if isinstance(value, (int, float)) else None
