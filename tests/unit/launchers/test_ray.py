"""The Ray Jobs backend against a real local Ray head (tests/ray_cluster.py): jobs really run,
fail, are stopped, and a failed training run is diagnosed from Ray's logs, fixed and relaunched."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.core.errors import OperationFailed
from bot.core.settings import Settings
from bot.demo import sample_repo
from bot.launchers import LaunchSpec, get_launcher, refresh_run, start_run
from bot.launchers.ray import LOG_LIMIT_BYTES, RayLauncher, excludes_for, write_tail
from bot.loop.launch import launch_branch, wait_for
from bot.loop.model import FixRequest
from bot.loop.pipeline import Pipeline
from bot.loop.repo_context import RepoContext
from bot.repo.config import DEFAULTS
from bot.store.runs import StateStore, new_run_id
from tests.support.git_repos import git
from tests.support.launchers import alive, make_worktree, wait_for_end
from tests.support.net import free_port
from tests.support.paths import REPO_ROOT
from tests.support.waiting import wait_until

ROOT = REPO_ROOT
PY = shlex.quote(sys.executable)


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    path = make_worktree(tmp_path)
    (path / "wandb").mkdir()
    (path / "wandb" / "big.bin").write_bytes(b"x" * 1024)  # must not be uploaded
    return path


def config_for(address: str, **ray) -> dict:
    return {**DEFAULTS, "launch": {**DEFAULTS["launch"], "backend": "ray", "ray": {"address": address, **ray}}}


def make_spec(
    worktree: Path, command: str, *, setup: str | None = None, env: dict | None = None, run_id: str | None = None
) -> LaunchSpec:
    run_id = run_id or f"r-{os.urandom(4).hex()}"
    return LaunchSpec(
        repo=str(worktree),
        branch="exp-a",
        commit="c0ffee",
        worktree=worktree,
        command=command,
        setup=setup,
        env=env or {},
        log_path=worktree.parent / "runs" / run_id / "output.log",
        run_id=run_id,
    )


# -- without a cluster ------------------------------------------------------------------


def test_importing_the_registry_never_imports_ray():
    code = "import sys, bot.launchers, bot.launchers.ray; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_ray_is_bad_input_saying_how_to_install_it(tmp_path):
    code = (
        "import sys\n"
        "class NoRay:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'ray' or name.startswith('ray.'): raise ImportError('no ray')\n"
        "sys.meta_path.insert(0, NoRay())\n"
        "from pathlib import Path\n"
        "from bot.core.settings import Settings\nfrom bot.core.errors import BadInput\n"
        "from bot.launchers import LaunchSpec, get_launcher\n"
        "spec = LaunchSpec(repo='r', branch='b', commit='c', worktree=Path('.'), command='true',\n"
        f"                  log_path=Path({str(tmp_path / 'out.log')!r}), run_id='r-1')\n"
        f"launcher = get_launcher('ray', Settings(state_dir=Path({str(tmp_path)!r})), None)\n"
        "try:\n    launcher.launch(spec)\nexcept BadInput as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "launch.backend ray needs: pip install 'fix-and-relaunch[ray]'"


def test_a_git_folder_is_excluded_but_a_worktree_pointer_file_is_kept(tmp_path):
    clone, linked = tmp_path / "clone", tmp_path / "linked"
    (clone / ".git").mkdir(parents=True)
    linked.mkdir()
    (linked / ".git").write_text("gitdir: /somewhere/.git/worktrees/linked\n")
    assert ".git" in excludes_for(clone)
    assert ".git" not in excludes_for(linked)
    assert {"wandb/", ".worktrees/"} <= set(excludes_for(linked))


def test_the_log_copy_keeps_only_the_last_whole_lines(tmp_path):
    path = tmp_path / "out.log"
    write_tail(path, "".join(f"line {i}\n" for i in range(1000)), 100)
    lines = path.read_text().splitlines()
    assert lines[-1] == "line 999" and all(line.startswith("line ") for line in lines)
    assert path.stat().st_size <= 100
    assert LOG_LIMIT_BYTES >= 1024 * 1024


def test_the_job_environment_carries_wandb_settings_but_no_other_secret(settings, worktree):
    launcher = RayLauncher(
        settings,
        config_for("http://127.0.0.1:1"),
        base_env={"ANTHROPIC_API_KEY": "sk-secret", "WANDB_MODE": "online", "PATH": "/bin"},
    )
    env = launcher.environment(make_spec(worktree, "true", env={"WANDB_RUN_ID": "r-1"}))
    assert "ANTHROPIC_API_KEY" not in env and "PATH" not in env
    assert (env["WANDB_MODE"], env["WANDB_RUN_ID"], env["WANDB_DIR"]) == ("offline", "r-1", str(worktree))
    keyed = RayLauncher(Settings(state_dir=settings.state_dir, wandb_api_key="k" * 40), None, base_env={})
    env = keyed.environment(make_spec(worktree, "true"))
    assert env["WANDB_API_KEY"] == "k" * 40 and "WANDB_MODE" not in env and "WANDB_DIR" not in env


def test_a_lost_job_supervisor_is_an_infrastructure_crash_and_diagnosed_retryable():
    job_submission = pytest.importorskip("ray.job_submission", reason="ray is not installed")
    from bot.diagnosis import diagnose_lines
    from bot.launchers.ray import from_job_info

    info = job_submission.JobDetails(
        type=job_submission.JobType.SUBMISSION,
        entrypoint="python main.py",
        status=job_submission.JobStatus.FAILED,
        error_type="JOB_SUPERVISOR_ACTOR_DIED",
        message="The actor died unexpectedly before finishing this task.",
        start_time=1_000,
        end_time=2_000,
    )

    status = from_job_info(info)

    assert (status.state, status.started_at, status.ended_at) == ("crashed", 1.0, 2.0)
    assert status.reason.startswith("JOB_SUPERVISOR_ACTOR_DIED: infrastructure failure")
    diagnosis = diagnose_lines([f"[ray] job raysubmit_1 ended: {status.reason}"])  # as the run's log ends
    assert (diagnosis.category, diagnosis.retryable) == ("infra", True)


def test_launch_to_an_address_where_nothing_answers_fails_cleanly(settings, worktree):
    address = f"http://127.0.0.1:{free_port()}"
    pytest.importorskip("ray.job_submission", reason="ray is not installed")
    with pytest.raises(OperationFailed, match=f"no Ray job server answers at {address}"):
        RayLauncher(settings, config_for(address)).launch(make_spec(worktree, "true"))


# -- against the cluster ----------------------------------------------------------------


def test_job_that_prints_and_exits_0_finishes_with_its_log_written(settings, worktree, ray_address):
    (worktree / "hello.txt").write_text("from the worktree\n")
    launcher = get_launcher("ray", settings, config_for(ray_address))
    spec = make_spec(
        worktree,
        f"{PY} -c \"import os; print(open('hello.txt').read().strip(), "
        f"os.environ['FOO'], os.environ['WANDB_DIR'], os.path.isdir('wandb'))\"",
        setup="echo setting up",
        env={"FOO": "bar"},
    )
    handle = launcher.launch(spec)
    assert handle["submission_id"] == spec.run_id and handle["address"] == ray_address

    status = wait_for_end(launcher, handle)

    assert (status.state, status.exit_code) == ("finished", 0)
    assert status.started_at and status.ended_at >= status.started_at
    log = Path(handle["log_path"]).read_text()
    assert "setting up" in log
    assert f"from the worktree bar {worktree} False" in log  # wandb/ was not uploaded


def test_job_that_exits_3_fails_with_exit_code_3_and_its_traceback_in_the_log(settings, worktree, ray_address):
    (worktree / "train.py").write_text(
        "def step(loss):\n    raise FloatingPointError(f'Loss is {loss} at step 7')\n\n"
        "try:\n    step(float('nan'))\nexcept FloatingPointError:\n"
        "    import traceback, sys\n    traceback.print_exc()\n    sys.exit(3)\n"
    )
    launcher = RayLauncher(settings, config_for(ray_address))
    handle = launcher.launch(make_spec(worktree, f"{PY} train.py"))

    status = wait_for_end(launcher, handle)

    assert (status.state, status.exit_code, status.reason) == ("failed", 3, None)
    log = Path(handle["log_path"]).read_text()
    assert "Traceback (most recent call last)" in log
    assert "FloatingPointError: Loss is nan at step 7" in log


def test_a_failing_setup_fails_the_job_and_skips_the_command(settings, worktree, ray_address):
    launcher = RayLauncher(settings, config_for(ray_address))
    handle = launcher.launch(make_spec(worktree, "echo command ran", setup="echo preparing\nexit 4"))

    status = wait_for_end(launcher, handle)

    assert (status.state, status.exit_code) == ("failed", 4)
    log = Path(handle["log_path"]).read_text()
    assert "launch.setup failed with exit code 4" in log and "command ran" not in log


def test_stop_kills_the_job(settings, worktree, ray_address, tmp_path):
    pid_file = tmp_path / "job.pid"
    launcher = RayLauncher(settings, config_for(ray_address))
    handle = launcher.launch(
        make_spec(
            worktree,
            f"{PY} -c \"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
            f"print('training', flush=True); time.sleep(300)\"",
        )
    )
    wait_until(lambda: pid_file.exists() and pid_file.read_text())
    pid = int(pid_file.read_text())
    assert launcher.status(handle).state == "running"

    launcher.cancel(handle)

    assert launcher.status(handle).state == "killed"
    wait_until(lambda: not alive(pid), timeout=15)
    assert "training" in Path(handle["log_path"]).read_text()
    launcher.cancel(handle)  # an ended job is left alone


def test_a_fresh_launcher_finds_the_job_from_the_stored_handle(settings, worktree, ray_address):
    store = StateStore.open(settings.state_dir)
    record = start_run(
        store, settings, config_for(ray_address), repo=str(worktree), branch="exp-a", commit="c0ffee", worktree=worktree
    )
    assert record.state == "running" and record.handle["submission_id"] == record.id

    deadline = time.monotonic() + 60
    while (record := refresh_run(store, settings, record)).state in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.2)

    # `python main.py` with no main.py: the job itself failed, Ray ran it fine.
    assert (record.state, record.exit_code) == ("failed", 2)
    assert "main.py" in Path(record.log_path).read_text()
    assert "end_reason" not in store.get_run(record.id).handle


def test_a_job_whose_handle_was_never_stored_is_adopted_by_its_submission_id(settings, worktree, ray_address, tmp_path):
    # What a bot SIGKILLed between Ray taking the job and storing the handle leaves: the run
    # recorded (queued, no handle), its job submitted.
    store = StateStore.open(settings.state_dir)
    go = tmp_path / "go"  # not in the worktree: the job runs in Ray's copy of it
    spec = make_spec(worktree, f"echo waiting; while [ ! -f {go} ]; do sleep 0.1; done", run_id=new_run_id())
    store.add_run(id=spec.run_id, repo="o/r", branch="exp-a", backend="ray", log_path=str(spec.log_path))
    handle = RayLauncher(settings, config_for(ray_address)).launch(spec)

    record = refresh_run(store, settings, store.get_run(spec.run_id))

    assert record.state in ("queued", "running") and record.handle, "adopted, not left without a handle"
    assert {k: v for k, v in record.handle.items() if k != "started_at"} == {
        k: v for k, v in handle.items() if k != "started_at"
    }
    go.touch()
    wait_until(lambda: refresh_run(store, settings, store.get_run(spec.run_id)).state not in ("queued", "running"), 60)
    assert (store.get_run(spec.run_id).state, store.get_run(spec.run_id).exit_code) == ("finished", 0)


def test_a_job_never_submitted_is_not_adopted_and_its_launch_is_lost_in_time(settings, ray_address, tmp_path):
    store = StateStore.open(settings.state_dir)
    log_path = tmp_path / "runs" / "r-0000nora" / "output.log"
    record = store.add_run(id="r-0000nora", repo="o/r", branch="b", backend="ray", log_path=str(log_path))
    assert refresh_run(store, settings, record).state == "queued"
    store.update_run(record.id, created_at=time.time() - RayLauncher(settings).launch_timeout_s - 1)
    assert refresh_run(store, settings, store.get_run(record.id)).state == "crashed"


# -- the whole fix loop on Ray ----------------------------------------------------------


def test_a_nan_run_on_ray_is_diagnosed_fixed_relaunched_and_verified(tmp_path, ray_address):
    clone = sample_repo.build(tmp_path, python=sys.executable)
    branch = sample_repo.BRANCH
    git(clone, "checkout", "-q", branch)
    (clone / ".github" / "fix-and-relaunch.yml").write_text(
        f"launch:\n  backend: ray\n  command: {sys.executable} main.py\n  ray: {{address: '{ray_address}'}}\n"
        "verify:\n  min_steps: 20\n  timeout: 120\nfix:\n  max_attempts: 2\n"
    )
    git(clone, "commit", "-q", "-am", "Run on Ray")
    git(clone, "push", "-q", "origin", branch)
    git(clone, "checkout", "-q", "main")
    ctx = RepoContext.open(Settings.from_env(), clone)

    first = wait_for(ctx, launch_branch(ctx, branch), poll=0.5, timeout=120)

    assert (first.backend, first.state) == ("ray", "failed")
    assert "FloatingPointError: Loss is" in Path(first.log_path).read_text()  # Ray's log, copied

    outcome = Pipeline(ctx, poll=0.5).run(FixRequest(branch=branch))

    assert (outcome.category, outcome.action, outcome.verified) == ("nan_loss", "patched", True), outcome.reason
    assert outcome.attempts[0].failed_run == first.id
    new = ctx.state.get_run(outcome.new_run["id"])
    assert new.backend == "ray" and new.handle["address"] == ray_address
    assert outcome.new_run["steps"] >= 20
    # The job ran in Ray's copy, yet its offline W&B run is in the worktree where the bot reads it.
    assert list((clone / ".worktrees" / branch / "wandb").glob(f"offline-run-*-{new.id}"))
