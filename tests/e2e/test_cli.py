"""The read-and-launch commands through the real command line: diagnose, history, runs,
launch and delete-run, offline (real offline W&B runs) and online (the real wandb client
against a local W&B server), and their errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.cli.main import main as cli
from bot.demo import sample_repo
from tests.support import experiment
from tests.support.fake_wandb import FakeWandb
from tests.support.git_repos import git
from tests.support.paths import LOGS


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def crashed(tmp_path_factory):
    """The sample repo with its experiment branch launched once: a real NaN crash, logged
    to a real offline W&B run."""
    tmp = tmp_path_factory.mktemp("sample")
    state = tmp / "state"
    clone = sample_repo.build(tmp, python=sys.executable)
    env = {**os.environ, "FIX_AND_RELAUNCH_STATE_DIR": str(state), "WANDB_MODE": "offline"}
    env.pop("WANDB_API_KEY", None)
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "launch", "--repo", str(clone), "--branch", sample_repo.BRANCH, "--wait"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return clone, state


@pytest.fixture
def sample(crashed, monkeypatch):
    clone, state = crashed
    monkeypatch.setenv("FIX_AND_RELAUNCH_STATE_DIR", str(state))
    return clone


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return experiment.build(tmp_path_factory.mktemp("exp"))


# -- diagnose ----------------------------------------------------------------------------


def test_diagnose_a_log_file(capsys):
    code, out, _ = run(capsys, "diagnose", "--log", LOGS / "oom_chained.log", "--json")
    assert code == 0
    result = json.loads(out)
    assert set(result) >= {"category", "retryable", "exception", "location", "evidence", "summary"}
    assert (result["category"], result["retryable"]) == ("oom", False)


def test_diagnose_a_branch_from_its_offline_run(capsys, sample):
    code, out, _ = run(capsys, "diagnose", "--repo", sample, "--branch", sample_repo.BRANCH, "--json")
    assert code == 0
    result = json.loads(out)
    assert result["category"] == "nan_loss" and result["retryable"] is False
    assert result["exception"] == {"type": "FloatingPointError", "message": "Loss is inf at step 91"}
    assert result["location"]["file"] == "src/train.py"
    assert result["config"]["lr"] == 25.0 and result["config"]["branch"] == sample_repo.BRANCH
    assert result["summary_metrics"]["lr"] == 25.0
    assert [row["_step"] for row in result["history"]][-1] == 90
    assert result["log_tail"][-1].startswith("FloatingPointError") or any(
        "FloatingPointError" in line for line in result["log_tail"]
    )


def test_diagnose_text_shows_config_summary_history_tail_and_verdict(capsys, sample):
    code, out, _ = run(capsys, "diagnose", "--repo", sample, "--branch", sample_repo.BRANCH)
    assert code == 0
    sections = [line for line in out.splitlines() if line.startswith("== ")]
    assert [s.split(" ")[1] for s in sections] == ["Config", "Summary", "Last", "Log", "Diagnosis"]
    assert "category: nan_loss" in out


def test_history_reads_the_last_rows(capsys, sample):
    code, out, _ = run(capsys, "history", "--repo", sample, "--branch", sample_repo.BRANCH, "--rows", 5, "--json")
    assert code == 0
    rows = json.loads(out)["rows"]
    assert [row["_step"] for row in rows] == [86, 87, 88, 89, 90]
    assert all(row["lr"] == 25.0 for row in rows)


@pytest.mark.parametrize(
    "args,message",
    [
        (("diagnose", "--log", "/nonexistent.log"), "no such log file"),
        (("diagnose", "--repo", "/", "--branch", "x"), "not a git repository"),
        (("history", "--branch", "no-such-branch"), "no run found for branch 'no-such-branch'"),
        (("diagnose", "--base", "no-such-parent"), "--base no-such-parent: not another branch of"),
        (("diagnose", "--branch", "main", "--base", "main"), "--base main: not another branch of"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, sample, monkeypatch, args, message):
    monkeypatch.chdir(sample)
    code, out, err = run(capsys, *args)
    assert code == 2
    assert message in err and err.count("\n") == 1 and out == ""


def test_broken_repo_config_names_the_key(capsys, repo):
    _, clone = repo
    code, _, err = run(capsys, "launch", "--repo", clone, "--branch", "exp-badconfig")
    assert code == 2
    assert "'verify.min_stepz'" in err


# -- launch, runs, delete-run ------------------------------------------------------------


def test_launch_wait_runs_and_delete_run(capsys, repo):
    _, clone = repo
    code, out, _ = run(capsys, "launch", "--repo", clone, "--branch", "exp-ok", "--wait", "--json")
    assert code == 0 and json.loads(out)["state"] == "finished"
    code, out, _ = run(capsys, "launch", "--repo", clone, "--branch", "exp-oom", "--wait", "--json")
    failed = json.loads(out)
    assert code == 1 and failed["state"] == "failed" and failed["exit_code"] == 1

    code, out, _ = run(capsys, "runs", "--repo", clone, "--json")
    by_branch = {r["branch"]: r for r in json.loads(out)}
    assert by_branch["exp-ok"]["state"] == "finished" and by_branch["exp-oom"]["state"] == "failed"
    code, out, _ = run(capsys, "runs", "--repo", clone, "--state", "failed", "--json")
    assert [r["id"] for r in json.loads(out)] == [failed["id"]]
    code, out, _ = run(capsys, "runs", "--repo", clone)
    assert "exp-oom" in out and "failed" in out

    code, out, _ = run(capsys, "delete-run", "--repo", clone, "--branch", "exp-oom")
    assert code == 0 and failed["id"] in out
    assert not Path(failed["log_path"]).exists()
    code, out, _ = run(capsys, "runs", "--repo", clone, "--json")
    assert failed["id"] not in out
    code, _, err = run(capsys, "delete-run", "--repo", clone, "--branch", "exp-ok")
    assert code == 2 and "no failed run" in err, "a successful run is never deleted"


@pytest.mark.parametrize("base", [None, "exp-warmup"])
def test_fix_compares_a_stacked_branch_with_the_base_it_is_given(capsys, tmp_path, base):
    """exp-tidy dropped a config key its parent exp-warmup added: `--base exp-warmup` is the
    evidence a rule restores it from; against main, which never had it, rules cannot fix it."""
    origin, clone = experiment.build(tmp_path)
    head = experiment.stacked_branches(origin)
    git(clone, "fetch", "-q", "origin")
    code, _, _ = run(capsys, "launch", "--repo", clone, "--branch", "exp-tidy", "--wait")
    assert code == 1

    args = ["fix", "--repo", clone, "--branch", "exp-tidy", "--quiet", "--json"]
    code, out, err = run(capsys, *args, *(["--base", base] if base else []))

    outcome = json.loads(out)
    if base is None:
        assert code == 1 and outcome["action"] == "gave_up" and "no rule fixes" in outcome["reason"], err
        assert git(origin, "rev-parse", "exp-tidy") == head
        return
    assert code == 0 and outcome["action"] == "patched" and outcome["verified"], err
    assert '"warmup_steps": 3' in git(origin, "show", "exp-tidy:src/config.py")


def test_delete_run_removes_the_offline_wandb_run(capsys, tmp_path, monkeypatch):
    clone = sample_repo.build(tmp_path, python=sys.executable)
    code, out, _ = run(capsys, "launch", "--repo", clone, "--branch", sample_repo.BRANCH, "--wait", "--json")
    record = json.loads(out)
    folders = list((clone / ".worktrees" / sample_repo.BRANCH / "wandb").glob(f"offline-run-*-{record['id']}"))
    assert code == 1 and len(folders) == 1
    code, _, _ = run(capsys, "delete-run", "--repo", clone, "--branch", sample_repo.BRANCH)
    assert code == 0 and not folders[0].exists()


def test_a_second_launch_while_one_runs_is_refused(capsys, repo):
    _, clone = repo
    code, out, _ = run(capsys, "launch", "--repo", clone, "--branch", "exp-slow", "--json")
    assert code == 0
    code, _, err = run(capsys, "launch", "--repo", clone, "--branch", "exp-slow")
    assert code == 1 and "already running" in err
    from bot.core.settings import Settings
    from bot.launchers import cancel_run
    from bot.store.runs import StateStore

    settings = Settings.from_env()
    cancel_run(StateStore.open(settings.state_dir), settings, json.loads(out)["id"])


def test_launches_of_one_branch_at_once_start_one_run(repo):
    _, clone = repo
    from bot.core.settings import Settings
    from bot.launchers import cancel_run
    from bot.store.runs import StateStore

    store = StateStore.open(Settings.from_env().state_dir)
    before = {r.id for r in store.list_runs(branch="exp-slow")}
    launches = [
        subprocess.Popen(
            [sys.executable, "-m", "bot", "launch", "--repo", str(clone), "--branch", "exp-slow"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in launches]

    started = [r for r in store.list_runs(branch="exp-slow") if r.id not in before]
    assert len(started) == 1 and sorted(code for code, _ in results) == [0, 1, 1], results
    assert all("is already" in err for code, err in results if code)
    cancel_run(store, Settings.from_env(), started[0].id)


def test_killing_the_bot_leaves_the_run_going_and_findable(capsys, repo):
    _, clone = repo
    bot = subprocess.Popen(
        [sys.executable, "-m", "bot", "launch", "--repo", str(clone), "--branch", "exp-slow", "--wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    run_id = _wait_for_running(capsys, clone, "exp-slow", exclude=_ids(capsys, clone))
    bot.send_signal(signal.SIGKILL)
    bot.wait(timeout=10)

    code, out, _ = run(capsys, "runs", "--repo", clone, "--branch", "exp-slow", "--json")
    assert json.loads(out)[0] == {**json.loads(out)[0], "id": run_id, "state": "running"}
    deadline = time.monotonic() + 30
    while (state := _state(capsys, clone, run_id)) == "running":
        assert time.monotonic() < deadline, "the run never ended"
        time.sleep(0.2)
    assert state == "finished"


def _ids(capsys, clone) -> set[str]:
    return {r["id"] for r in json.loads(run(capsys, "runs", "--repo", clone, "--json")[1])}


def _state(capsys, clone, run_id: str) -> str:
    return next(r["state"] for r in json.loads(run(capsys, "runs", "--repo", clone, "--json")[1]) if r["id"] == run_id)


def _wait_for_running(capsys, clone, branch: str, exclude: set[str]) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        runs = json.loads(run(capsys, "runs", "--repo", clone, "--branch", branch, "--json")[1])
        fresh = [r for r in runs if r["id"] not in exclude and r["state"] == "running"]
        if fresh:
            return fresh[0]["id"]
        time.sleep(0.1)
    raise AssertionError("the run never started")


# -- the same commands through the W&B API ------------------------------------------------


@pytest.fixture
def wandb_server(monkeypatch):
    with FakeWandb(api_key="a" * 40) as server:
        monkeypatch.setenv("WANDB_API_KEY", "a" * 40)
        monkeypatch.setenv("WANDB_BASE_URL", server.url)
        monkeypatch.setenv("WANDB_ENTITY", server.entity)
        monkeypatch.setenv("WANDB_PROJECT", "vision")
        yield server


def test_diagnose_history_and_delete_through_the_wandb_api(capsys, repo, wandb_server):
    _, clone = repo
    log = "\n".join(
        [
            *(f"step {i}" for i in range(500)),
            "Traceback (most recent call last):",
            '  File "/home/ci/exp/src/train.py", line 9, in train',
            "    raise RuntimeError('CUDA out of memory. Tried to allocate 2.00 GiB')",
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
        ]
    )
    wandb_server.add_run(
        "old1", project="vision", state="finished", config={"branch": "exp-w"}, created_at=time.time() - 3600
    )
    wandb_server.add_run(
        "crash1",
        project="vision",
        state="crashed",
        config={"branch": "exp-w", "batch_size": 512},
        history=[{"loss": 1.0 / (i + 1)} for i in range(300)],
        log=log,
        created_at=time.time(),
    )

    code, out, _ = run(capsys, "diagnose", "--repo", clone, "--branch", "exp-w", "--json")
    assert code == 0, out
    result = json.loads(out)
    assert result["category"] == "oom" and result["run"]["id"] == "crash1"
    assert result["config"]["batch_size"] == 512
    code, out, _ = run(capsys, "history", "--repo", clone, "--branch", "exp-w", "--rows", 3, "--json")
    assert [row["_step"] for row in json.loads(out)["rows"]] == [297, 298, 299]
    ops = wandb_server.operations()
    assert "RunConsoleLogTail" in ops and "RunFullHistory" not in ops

    code, _, _ = run(capsys, "delete-run", "--repo", clone, "--branch", "exp-w")
    assert code == 0
    assert wandb_server.find_run(wandb_server.entity, "vision", "crash1") is None
    assert wandb_server.find_run(wandb_server.entity, "vision", "old1") is not None


def test_a_closed_pipe_ends_quietly(repo, tmp_path):
    from bot.store.runs import StateStore

    _, clone = repo
    store = StateStore.open(tmp_path / "state")
    for i in range(2000):  # far more output than a pipe buffers
        store.add_run(repo=str(clone.resolve()), branch=f"exp-{i}", backend="local", state="failed", exit_code=1)
    env = {**os.environ, "FIX_AND_RELAUNCH_STATE_DIR": str(tmp_path / "state")}
    proc = subprocess.run(
        f"{sys.executable} -m bot runs --repo {clone} --json | head -c 1",
        shell=True,
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.stdout == "["
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_an_unreadable_private_key_file_is_bad_input(capsys, monkeypatch):
    monkeypatch.setenv("GITHUB_PRIVATE_KEY_PATH", "/nonexistent/app.pem")
    code, out, err = run(capsys, "diagnose", "--log", LOGS / "oom_chained.log")
    assert code == 2 and "cannot read the GitHub App's private key file /nonexistent/app.pem" in err


def test_demo_refuses_a_folder_that_is_not_empty(capsys, tmp_path):
    (tmp_path / "something").write_text("mine")
    code, _, err = run(capsys, "demo", "--dir", tmp_path)
    assert code == 2 and "is not empty" in err
    assert (tmp_path / "something").read_text() == "mine"


def test_diagnose_redacts_secret_named_config_values(capsys, tmp_path):
    from tests.support.git_repos import make_origin
    from tests.support.wandb_runs import make_offline_run

    _, clone = make_origin(tmp_path, branches={"exp-s": {"x.txt": "x"}})
    make_offline_run(
        clone,
        config={"branch": "exp-s", "db_password": 'p"w0rd', "lr": 0.1},
        steps=[{"loss": 1.0, "api_key": "sk-proj-abcdefghijklmnopqrstuvwx"}],
        crash="raise ValueError('boom')",
    )
    code, out, _ = run(capsys, "diagnose", "--repo", clone, "--branch", "exp-s", "--json")
    assert code == 0, out
    result = json.loads(out)
    assert result["config"]["db_password"] == "[REDACTED]" and result["config"]["lr"] == 0.1
    assert "abcdefghijklmnop" not in out and 'p\\"w0rd' not in out


# -- check-config, and the same validation in launch and fix -----------------------------------

BAD_CONFIG = """launch:
  comand: python train.py
  backend: slurm
  slurm: {partiton: gpu, cpus: 0}
verify:
  min_steps: 0
"""


def test_check_config_reports_every_problem_at_once(capsys, tmp_path, monkeypatch):
    from tests.support.git_repos import make_origin, write_files

    _, clone = make_origin(tmp_path, branches={"exp-a": {"x.txt": "x"}})
    monkeypatch.chdir(clone)
    code, out, err = run(capsys, "check-config")
    assert code == 0 and out.startswith(".github/fix-and-relaunch.yml: valid (backend local")
    write_files(clone, {".github/fix-and-relaunch.yml": BAD_CONFIG})
    code, out, err = run(capsys, "check-config")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        ".github/fix-and-relaunch.yml: 4 problems",
        "  .github/fix-and-relaunch.yml:2: 'launch.comand' is not a known key (did you mean 'launch.command'?)",
        "  .github/fix-and-relaunch.yml:4: 'launch.slurm.cpus' must be at least 1, got int 0",
        "  .github/fix-and-relaunch.yml:4: 'launch.slurm.partiton' is not a known key "
        "(did you mean 'launch.slurm.partition'?)",
        "  .github/fix-and-relaunch.yml:6: 'verify.min_steps' must be at least 1, got int 0",
    ]
    code, out, _ = run(capsys, "check-config", "--json")
    report = json.loads(out)
    assert code == 2 and not report["valid"] and [p["key"] for p in report["problems"]][0] == "launch.comand"
    code, out, _ = run(capsys, "check-config", "--branch", "exp-a")  # as committed: still valid
    assert code == 0 and out.startswith("exp-a:.github/fix-and-relaunch.yml: valid")
    code, out, _ = run(capsys, "check-config", "--schema")
    assert code == 0 and json.loads(out)["title"] == "fix-and-relaunch repo config"


def test_launch_and_fix_refuse_a_broken_config_with_every_problem(capsys, tmp_path):
    from tests.support.git_repos import commit_on_origin, make_origin

    origin, clone = make_origin(tmp_path, branches={"exp-a": {"x.txt": "x"}})
    commit_on_origin(origin, "exp-a", {".github/fix-and-relaunch.yml": BAD_CONFIG}, "Broken config")
    for command in ("launch", "fix"):
        code, out, err = run(capsys, command, "--repo", clone, "--branch", "exp-a")
        assert code == 2 and out == "", command
        lines = err.splitlines()
        assert lines[0] == "fix-and-relaunch: 4 problems:"
        assert "'launch.comand' is not a known key (did you mean 'launch.command'?)" in lines[1]


@pytest.mark.parametrize(
    "text,message",
    [
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        ("launch:\n  command: '" + "x" * (2 * 1024 * 1024) + "'\n", "is over 256 KiB"),
    ],
)
def test_a_hostile_config_is_a_config_error_not_a_traceback(capsys, tmp_path, text, message):
    from tests.support.git_repos import make_origin

    _, clone = make_origin(tmp_path, branches={"exp-h": {".github/fix-and-relaunch.yml": text}})
    code, out, err = run(capsys, "launch", "--repo", clone, "--branch", "exp-h")
    assert code == 2 and message in err and "Traceback" not in err


# -- a launch the backend refuses is an error, not a run ---------------------------------------


@pytest.mark.parametrize(
    "config,env,message",
    [
        ("launch:\n  backend: slurm\n  command: python main.py\n", {"PATH": "/nonexistent"}, "sbatch not found"),
        (
            "launch:\n  backend: wandb-launch\n  wandb: {job: t/p/train:latest, entity: t, project: p}\n",
            {},
            "WANDB_API_KEY",
        ),
    ],
)
def test_a_refused_launch_exits_2_and_records_no_run(capsys, tmp_path, monkeypatch, config, env, message):
    from tests.support.git_repos import make_origin

    _, clone = make_origin(tmp_path, branches={"exp-r": {".github/fix-and-relaunch.yml": config}})
    if "PATH" in env:  # a machine without Slurm's client: only git on the PATH
        tools = tmp_path / "bin"
        tools.mkdir()
        (tools / "git").symlink_to(shutil.which("git"))
        monkeypatch.setenv("PATH", str(tools))
    code, out, err = run(capsys, "launch", "--repo", clone, "--branch", "exp-r")
    assert code == 2 and message in err and err.count("\n") == 1
    code, out, _ = run(capsys, "runs", "--repo", clone, "--json")
    assert json.loads(out) == [], "no failed run is left for diagnose or fix to pick up"


# -- diagnose and fix act on the latest run ---------------------------------------------------


def test_diagnose_says_when_the_latest_run_did_not_fail_and_reaches_older_ones(capsys, repo):
    _, clone = repo
    code, out, _ = run(capsys, "launch", "--repo", clone, "--branch", "exp-data", "--wait", "--json")
    failed = json.loads(out)
    assert code == 1
    from bot.core.settings import Settings
    from bot.store.runs import StateStore

    store = StateStore.open(Settings.from_env().state_dir)  # a later run of the branch that finished
    store.add_run(repo=str(clone.resolve()), branch="exp-data", backend="local", state="finished", exit_code=0)
    code, out, _ = run(capsys, "diagnose", "--repo", clone, "--branch", "exp-data")
    assert code == 0 and "the latest run of exp-data" in out and "is finished" in out and "--run ID" in out
    code, out, _ = run(capsys, "diagnose", "--repo", clone, "--branch", "exp-data", "--json")
    assert json.loads(out)["category"] is None
    code, out, _ = run(capsys, "diagnose", "--repo", clone, "--branch", "exp-data", "--run", failed["id"], "--json")
    assert code == 0 and json.loads(out)["category"] == "data_not_found"
    code, out, _ = run(capsys, "fix", "--repo", clone, "--branch", "exp-data", "--json")
    assert code == 0 and json.loads(out)["action"] == "none", "the latest run did not fail: nothing to fix"
    code, _, err = run(capsys, "diagnose", "--repo", clone, "--branch", "exp-ok", "--run", failed["id"])
    assert code == 2 and "not of exp-ok" in err


def test_version_and_help(capsys):
    with pytest.raises(SystemExit):
        cli(["--version"])
    assert capsys.readouterr().out.startswith("fix-and-relaunch ")
    with pytest.raises(SystemExit):
        cli(["serve", "--help"])
    assert "GITHUB_WEBHOOK_SECRET" in capsys.readouterr().out
