"""The Slurm backend against a real single-node cluster (munged, slurmctld, slurmd) started
by this module: submit, status, cancel, preemption, a bot restart, and the fix pipeline.

Without Slurm installed these tests skip (fail under CI=true): `bash .ci/install-slurm.sh`.
"""

from __future__ import annotations

import copy
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.core.errors import BadInput
from bot.core.settings import Settings
from bot.launchers import LaunchSpec, get_launcher, refresh_run, start_run
from bot.launchers.slurm import SlurmLauncher, map_state, parse_exit_code, status_from_fields
from bot.repo.config import DEFAULTS
from bot.store.runs import StateStore, new_run_id
from tests.support.git_repos import git, remote_refs
from tests.support.launchers import wait_for_end
from tests.support.waiting import wait_until

PY = shlex.quote(sys.executable)


def config_with(**slurm) -> dict:
    config = copy.deepcopy(DEFAULTS)
    config["launch"].update(backend="slurm", slurm=slurm)
    return config


def make_spec(
    worktree: Path,
    command: str,
    *,
    branch: str = "exp-a",
    run_id: str = "r-0000slrm",
    setup: str | None = None,
    log_dir: Path | None = None,
) -> LaunchSpec:
    log_dir = log_dir or worktree.parent / "runs" / run_id
    return LaunchSpec(
        repo=str(worktree),
        branch=branch,
        commit="c0ffee",
        worktree=worktree,
        command=command,
        setup=setup,
        log_path=log_dir / "output.log",
        run_id=run_id,
    )


def scontrol_job(job_id: str) -> str:
    return subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True).stdout


def submit_high_priority_job() -> str:
    """A job of the high partition that needs the whole node: Slurm preempts the low one."""
    out = subprocess.run(
        ["sbatch", "--parsable", "--partition=high", "--exclusive", "--output=/dev/null", "--wrap=true"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


# -- options and states (no cluster needed) --------------------------------------------


@pytest.mark.parametrize(
    "slurm_options, key",
    [
        ({"cpus": "4"}, "launch.slurm.cpus"),
        ({"cpus": 0}, "launch.slurm.cpus"),
        ({"time": True}, "launch.slurm.time"),
        ({"partition": ["gpu"]}, "launch.slurm.partition"),
        ({"partition": "gpu\n#SBATCH --uid=0"}, "launch.slurm.partition"),
        ({"mem": "16 G"}, "launch.slurm.mem"),
        ({"requeue": "no"}, "launch.slurm.requeue"),
        ({"extra": "--exclusive"}, "launch.slurm.extra"),
        ({"extra": ["--exclusive", 3]}, "launch.slurm.extra[1]"),
        ({"extra": ["--comment=a\nrm -rf ~"]}, "launch.slurm.extra[0]"),
        ({"extra": ["exclusive"]}, "launch.slurm.extra[0]"),
        ({"partiton": "gpu"}, "launch.slurm.partiton"),
    ],
)
def test_bad_slurm_options_are_refused_naming_the_key(settings, worktree, slurm_options, key):
    launcher = SlurmLauncher(settings, config_with(**slurm_options))
    with pytest.raises(BadInput) as refused:
        launcher.launch(make_spec(worktree, "true"))
    assert key in str(refused.value)
    assert not (worktree.parent / "runs").exists() or not list((worktree.parent / "runs").rglob("*.sbatch"))


@pytest.mark.parametrize(
    "slurm_state, restarts, expected",
    [
        ("PENDING", 0, ("queued", None)),
        ("CONFIGURING", 0, ("queued", None)),
        ("RUNNING", 0, ("running", None)),
        ("COMPLETING", 0, ("running", None)),
        ("COMPLETED", 0, ("finished", None)),
        ("FAILED", 0, ("failed", None)),
        ("CANCELLED", 0, ("killed", None)),
        ("PREEMPTED", 0, ("crashed", "PREEMPTED")),
        ("NODE_FAIL", 0, ("crashed", "NODE_FAIL")),
        ("BOOT_FAIL", 0, ("crashed", "BOOT_FAIL")),
        ("TIMEOUT", 1, ("crashed", "TIMEOUT")),
        ("TIMEOUT", 0, ("failed", "TIMEOUT")),
        ("OUT_OF_MEMORY", 0, ("failed", "OUT_OF_MEMORY")),
    ],
)
def test_slurm_states_map_to_run_states(slurm_state, restarts, expected):
    assert map_state(slurm_state, restarts) == expected


def test_exit_codes_and_sacct_style_states_are_read():
    assert [parse_exit_code(c) for c in ("0:0", "3:0", "0:15", "", "1:9")] == [0, 3, 143, None, 1]
    status = status_from_fields(
        {
            "JobState": "CANCELLED by 0",
            "ExitCode": "0:15",
            "StartTime": "2024-05-01T10:00:00",
            "EndTime": "2024-05-01T10:05:00",
        },
        "7",
    )
    assert (status.state, status.exit_code, status.ended_at - status.started_at) == ("killed", 143, 300)
    oom = status_from_fields({"JobState": "OUT_OF_MEMORY", "ExitCode": "0:125", "EndTime": "Unknown"}, "8")
    assert (oom.state, oom.reason) == ("failed", "OUT_OF_MEMORY") and oom.ended_at is not None


@pytest.mark.parametrize("reason, category", [("PREEMPTED", "infra"), ("NODE_FAIL", "infra"), ("OUT_OF_MEMORY", "oom")])
def test_the_scheduler_line_of_an_end_classifies(reason, category):
    from bot.diagnosis import diagnose_lines

    diagnosis = diagnose_lines([f"[slurm] job 12 ended: {reason}"])
    assert (diagnosis.category, diagnosis.retryable) == (category, category == "infra")


# -- jobs on the cluster ---------------------------------------------------------------


def test_job_that_prints_and_exits_0_finishes_with_its_output_logged(slurm, settings, worktree):
    launcher = SlurmLauncher(settings, config_with())
    spec = make_spec(worktree, 'echo hello from slurm; pwd; echo "$FIX_AND_RELAUNCH_RUN_ID $WANDB_MODE"')
    handle = launcher.launch(spec)
    assert json.loads(json.dumps(handle))["job_id"].isdigit()
    assert (handle["cluster"], handle["log_path"]) == ("fartest", str(spec.log_path))
    assert handle["submitted_at"] <= time.time()
    status = wait_for_end(launcher, handle)
    assert (status.state, status.exit_code, status.reason, status.job_id) == ("finished", 0, None, handle["job_id"])
    assert status.ended_at >= status.started_at
    assert spec.log_path.read_text().splitlines() == ["hello from slurm", str(worktree), "r-0000slrm offline"]


def test_job_that_exits_3_fails_with_exit_code_3(slurm, settings, worktree):
    launcher = SlurmLauncher(settings, config_with())
    handle = launcher.launch(make_spec(worktree, "echo about to fail; exit 3", setup="echo setting up"))
    status = wait_for_end(launcher, handle)
    assert (status.state, status.exit_code, status.reason) == ("failed", 3, None)
    assert Path(handle["log_path"]).read_text().splitlines() == ["setting up", "about to fail"]


def test_cancel_kills_a_running_job(slurm, settings, worktree):
    launcher = SlurmLauncher(settings, config_with())
    handle = launcher.launch(make_spec(worktree, "echo started; sleep 300"))
    wait_until(
        lambda: (
            "started" in Path(handle["log_path"]).read_text(errors="replace")
            if Path(handle["log_path"]).exists()
            else False
        ),
        what="the job to start",
    )
    launcher.cancel(handle)
    status = launcher.status(handle)
    assert status.state == "killed"
    launcher.cancel(handle)  # an ended job is left alone
    assert launcher.status(handle).state == "killed"


def test_a_slurm_job_gets_none_of_the_bots_secrets(slurm, tmp_path, worktree, monkeypatch):
    bot_secrets = {
        "GITHUB_PRIVATE_KEY": "-----BEGIN RSA PRIVATE KEY-----xyz",
        "GITHUB_PRIVATE_KEY_PATH": "/srv/app.pem",
        "GITHUB_WEBHOOK_SECRET": "hook-secret-1",
        "WANDB_WEBHOOK_SECRET": "wandb-hook-secret",
        "ANTHROPIC_API_KEY": "sk-ant-secret",
        "GITHUB_TOKEN": "ghs_installationtoken",
        "GH_TOKEN": "ghp_usertoken",
        "MY_COPY_OF_THE_KEY": "sk-ant-secret",
    }
    user_vars = {"CUDA_VISIBLE_DEVICES": "0,1", "HF_TOKEN": "hf_user_token", "WANDB_API_KEY": "w" * 40}
    for name, value in {**bot_secrets, **user_vars}.items():
        monkeypatch.setenv(name, value)
    settings = Settings(
        state_dir=tmp_path / "state",
        wandb_api_key="w" * 40,
        anthropic_api_key="sk-ant-secret",
        github_private_key="-----BEGIN RSA PRIVATE KEY-----xyz",
        github_webhook_secret="hook-secret-1",
        wandb_webhook_secret="wandb-hook-secret",
    )
    launcher = SlurmLauncher(settings, config_with())  # the bot's own environment, --export=ALL
    spec = make_spec(worktree, f"{PY} -c 'import json, os; print(json.dumps(dict(os.environ)))'")
    assert wait_for_end(launcher, launcher.launch(spec)).state == "finished"
    job_env = json.loads(spec.log_path.read_text())
    assert not set(bot_secrets) & set(job_env)
    assert not [name for name, value in job_env.items() if any(s in value for s in bot_secrets.values())]
    assert {name: job_env.get(name) for name in user_vars} == user_vars


def test_a_hostile_branch_name_cannot_inject_into_the_script(slurm, settings, tmp_path):
    branch = "x;touch${IFS}pwned1;$(touch${IFS}pwned2)`touch${IFS}pwned3`'\"&&touch${IFS}pwned4"
    worktree = tmp_path / "worktrees" / branch
    worktree.mkdir(parents=True)
    launcher = SlurmLauncher(settings, config_with())
    # A `%j` in the log's path stays literal: sbatch would put the job id there.
    spec = make_spec(
        worktree,
        'pwd; printf "%s\\n" "$FIX_AND_RELAUNCH_BRANCH"',
        branch=branch,
        log_dir=tmp_path / "state 100%j" / "runs",
    )
    handle = launcher.launch(spec)
    status = wait_for_end(launcher, handle)
    assert status.state == "finished"
    assert spec.log_path.read_text().splitlines() == [str(worktree), branch]
    assert not [p for p in tmp_path.rglob("pwned*")] and not list(Path.cwd().glob("pwned*"))
    assert shlex.quote(str(worktree)) in Path(handle["script_path"]).read_text()


def test_status_after_a_bot_restart_comes_from_the_stored_handle(slurm, settings, worktree):
    store = StateStore.open(settings.state_dir)
    config = config_with()
    config["launch"]["command"] = "echo waiting; sleep 1; echo done"
    record = start_run(store, settings, config, repo=str(worktree), branch="exp-a", commit="c0ffee", worktree=worktree)
    assert (record.backend, record.state) == ("slurm", "running")
    del store  # the bot goes away; a new one opens the same state and a new launcher
    store = StateStore.open(settings.state_dir)
    record = store.get_run(record.id)
    fresh = get_launcher("slurm", Settings(state_dir=settings.state_dir))
    assert fresh.status(record.handle).state in ("queued", "running")
    wait_until(lambda: fresh.status(record.handle).ended, what="the job to end")
    record = refresh_run(store, settings, record)
    assert (record.state, record.exit_code) == ("finished", 0)
    assert Path(record.log_path).read_text().splitlines() == ["waiting", "done"]


def test_slurm_options_reach_the_script_and_the_job(slurm, settings, worktree):
    launcher = SlurmLauncher(
        settings,
        config_with(partition="high", time=5, cpus=1, extra=["--comment=from-the-repo-config", "#SBATCH --exclusive"]),
    )
    handle = launcher.launch(make_spec(worktree, "echo ok"))
    script = Path(handle["script_path"]).read_text()
    for line in (
        "#SBATCH --partition=high",
        "#SBATCH --time=5",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --no-requeue",
        "#SBATCH --comment=from-the-repo-config",
        "#SBATCH --exclusive",
    ):
        assert line in script.splitlines()
    job = scontrol_job(handle["job_id"])
    for field in (
        "Partition=high",
        "TimeLimit=00:05:00",
        "Comment=from-the-repo-config",
        "Requeue=0",
        "OverSubscribe=NO",
    ):
        assert field in job.split()
    assert wait_for_end(launcher, handle).state == "finished"


def test_a_preempted_job_crashes_with_reason_preempted(slurm, settings, worktree):
    launcher = SlurmLauncher(settings, config_with(partition="low", extra=["--exclusive"]))
    handle = launcher.launch(make_spec(worktree, "echo started; sleep 300"))
    wait_until(lambda: launcher.status(handle).state == "running", what="the low job to run")
    submit_high_priority_job()
    status = wait_for_end(launcher, handle)
    assert (status.state, status.reason) == ("crashed", "PREEMPTED")
    assert "DUE TO PREEMPTION" in Path(handle["log_path"]).read_text()


# -- through the fix pipeline ----------------------------------------------------------

SLURM_REPO_CONFIG = """launch:
  backend: slurm
  command: {python} main.py
  slurm:
    partition: low
{extra}verify:
  min_steps: 20
  timeout: 120
fix:
  max_attempts: 2
"""


def sample_repo_on_slurm(tmp_path: Path, *, branch: str, lr: str, steps: int = 150, extra: str = "") -> Path:
    """The sample repo, with the experiment branch launching through Slurm (pushed to origin)."""
    from bot.demo import sample_repo

    work = sample_repo.build(tmp_path, python=sys.executable, branch=branch, lr=lr)
    git(work, "checkout", "-q", branch)
    (work / ".github" / "fix-and-relaunch.yml").write_text(
        SLURM_REPO_CONFIG.format(python=shlex.quote(sys.executable), extra=extra)
    )
    config_py = work / "src" / "config.py"
    config_py.write_text(config_py.read_text().replace('"steps": 150', f'"steps": {steps}'))
    git(work, "commit", "-q", "-am", "Run on Slurm")
    git(work, "push", "-q", "origin", branch)
    git(work, "checkout", "-q", "main")
    return work


def test_the_pipeline_fixes_a_nan_loss_run_on_slurm_and_relaunches_it_there(slurm, tmp_path):
    from bot.loop.launch import launch_branch, wait_for
    from bot.loop.model import FixRequest
    from bot.loop.pipeline import Pipeline
    from bot.loop.repo_context import RepoContext

    branch = "exp-slurm-nan"
    work = sample_repo_on_slurm(tmp_path, branch=branch, lr="25.0")
    ctx = RepoContext.open(Settings.from_env(), work)
    failed = wait_for(ctx, launch_branch(ctx, branch), poll=0.2, timeout=120)
    assert (failed.backend, failed.state) == ("slurm", "failed")
    assert "FloatingPointError" in Path(failed.log_path).read_text()

    outcome = Pipeline(ctx, poll=0.5).run(FixRequest(branch=branch))
    assert (outcome.category, outcome.action, outcome.verified) == ("nan_loss", "patched", True), outcome.reason
    new = ctx.state.get_run(outcome.new_run["id"])
    assert new.backend == "slurm" and new.handle["job_id"] != failed.handle["job_id"]
    assert remote_refs(tmp_path / "origin.git")[f"refs/heads/{branch}"] == outcome.commits[-1]


def test_the_pipeline_relaunches_a_preempted_run_unchanged(slurm, tmp_path):
    from bot.loop.launch import launch_branch
    from bot.loop.model import FixRequest
    from bot.loop.pipeline import Pipeline
    from bot.loop.repo_context import RepoContext

    branch = "exp-slurm-preempted"
    work = sample_repo_on_slurm(tmp_path, branch=branch, lr="0.3", steps=3000, extra='    extra: ["--exclusive"]\n')
    origin_before = remote_refs(tmp_path / "origin.git")
    ctx = RepoContext.open(Settings.from_env(), work)
    record = launch_branch(ctx, branch)
    launcher = get_launcher("slurm", ctx.settings)
    wait_until(lambda: launcher.status(record.handle).state == "running", what="the run to start")
    submit_high_priority_job()
    preempted = wait_until(
        lambda: (r := refresh_run(ctx.state, ctx.settings, ctx.state.get_run(record.id))).state != "running" and r,
        what="the run to be preempted",
    )
    assert (preempted.state, preempted.handle["end_reason"]) == ("crashed", "PREEMPTED")

    outcome = Pipeline(ctx, poll=0.5).run(FixRequest(branch=branch))
    assert (outcome.category, outcome.action, outcome.verified) == ("infra", "relaunched", True), outcome.reason
    assert outcome.commits == [] and remote_refs(tmp_path / "origin.git") == origin_before
    assert ctx.state.get_run(outcome.new_run["id"]).backend == "slurm"


def test_statuses_of_many_jobs_cost_one_scontrol_for_all_of_them(slurm, settings, worktree):
    calls: list[str] = []

    class Counting(SlurmLauncher):
        def _call(self, argv, env=None):
            calls.append(" ".join(argv[:4]))
            return super()._call(argv, env)

    launcher = Counting(settings, config_with())
    done = launcher.launch(make_spec(worktree, "exit 0"))
    failed = launcher.launch(make_spec(worktree, "exit 3"))
    wait_for_end(launcher, done), wait_for_end(launcher, failed)
    running = launcher.launch(make_spec(worktree, "sleep 300"))
    gone = {**running, "job_id": "999999"}
    calls.clear()
    statuses = launcher.statuses([done, failed, running, gone])
    assert [s.state for s in statuses][:2] == ["finished", "failed"] and statuses[1].exit_code == 3
    assert statuses[2].state in ("queued", "running") and statuses[3].state == "crashed"
    assert [s.state for s in statuses] == [launcher.status(h).state for h in (done, failed, running, gone)]
    assert sum(c.startswith("scontrol") for c in calls) == 1 + 4, "one for all four, then one each to compare"


def test_a_job_whose_id_was_never_stored_is_adopted_by_its_name(slurm, settings, worktree):
    # What a bot SIGKILLed between sbatch's answer and storing the handle leaves: the run
    # recorded (queued, no handle), its job submitted.
    store = StateStore.open(settings.state_dir)
    spec = make_spec(worktree, "echo waiting; while [ ! -f go ]; do sleep 0.1; done", run_id=new_run_id())
    store.add_run(id=spec.run_id, repo="o/r", branch="exp-a", backend="slurm", log_path=str(spec.log_path))
    launcher = SlurmLauncher(settings, config_with())
    handle = launcher.launch(spec)

    record = refresh_run(store, settings, store.get_run(spec.run_id))

    assert record.state == "running"
    assert {k: v for k, v in record.handle.items() if k != "submitted_at"} == {
        k: v for k, v in handle.items() if k != "submitted_at"
    }
    assert abs(record.handle["submitted_at"] - handle["submitted_at"]) < 5
    (worktree / "go").touch()
    wait_until(lambda: refresh_run(store, settings, store.get_run(spec.run_id)).state != "running", 60.0)
    assert (store.get_run(spec.run_id).state, store.get_run(spec.run_id).exit_code) == ("finished", 0)


def test_a_job_never_submitted_is_not_adopted_and_its_launch_is_lost_in_time(slurm, settings, tmp_path):
    store = StateStore.open(settings.state_dir)
    log_path = tmp_path / "runs" / "r-0000nosb" / "output.log"
    record = store.add_run(id="r-0000nosb", repo="o/r", branch="b", backend="slurm", log_path=str(log_path))
    assert refresh_run(store, settings, record).state == "queued"
    store.update_run(record.id, created_at=time.time() - SlurmLauncher(settings).launch_timeout_s - 1)
    assert refresh_run(store, settings, store.get_run(record.id)).state == "crashed"
