"""Launchers, with real processes: the detached supervisor, status files, process groups."""

from __future__ import annotations

import copy
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot import launchers
from bot.core.errors import BadInput, OperationFailed
from bot.core.settings import Settings
from bot.launchers import LaunchSpec, active_runs, cancel_run, get_launcher, refresh_run, start_run
from bot.launchers.command import CommandLauncher, find_job_id, render_command
from bot.launchers.local import LocalLauncher
from bot.repo.config import DEFAULTS
from bot.store.runs import StateStore
from tests.support.launchers import alive, wait_for_end
from tests.support.paths import REPO_ROOT
from tests.support.waiting import wait_until

ROOT = REPO_ROOT
PY = shlex.quote(sys.executable)
# The job's environment: the test's own, without any W&B settings leaking in from outside.
BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}


@pytest.fixture(autouse=True)
def no_leftover_jobs(tmp_path: Path):
    """A failing test must not leave its `sleep 300` behind: kill every job it started."""
    yield
    for status_file in tmp_path.rglob("*.status.json"):
        pgid = json.loads(status_file.read_text()).get("pgid")
        if pgid and alive(pgid):
            os.killpg(pgid, signal.SIGKILL)


@pytest.fixture
def store(settings: Settings) -> StateStore:
    return StateStore.open(settings.state_dir)


def make_spec(
    worktree: Path,
    command: str,
    *,
    setup: str | None = None,
    branch: str = "exp-a",
    env: dict | None = None,
    run_id: str = "r-0000test",
) -> LaunchSpec:
    return LaunchSpec(
        repo=str(worktree),
        branch=branch,
        commit="c0ffee",
        worktree=worktree,
        command=command,
        setup=setup,
        env=env or {},
        log_path=worktree.parent / "runs" / run_id / "output.log",
        run_id=run_id,
    )


def config_with(**launch) -> dict:
    config = copy.deepcopy(DEFAULTS)
    config["launch"].update(launch)
    return config


# -- local ----------------------------------------------------------------------------


def test_command_that_succeeds_finishes_with_its_output_logged(settings, worktree):
    launcher = LocalLauncher(settings, base_env=BASE_ENV)
    spec = make_spec(worktree, "echo hello from the job; pwd")
    handle = launcher.launch(spec)
    json.dumps(handle)  # the handle must survive a restart, so it must serialise
    status = wait_for_end(launcher, handle)
    assert (status.state, status.exit_code) == ("finished", 0)
    assert status.ended_at >= status.started_at
    assert spec.log_path.read_text().splitlines() == ["hello from the job", str(worktree)]


def test_command_that_exits_3_fails_with_exit_code_3(settings, worktree):
    launcher = LocalLauncher(settings, base_env=BASE_ENV)
    handle = launcher.launch(make_spec(worktree, "echo about to fail; exit 3"))
    status = wait_for_end(launcher, handle)
    assert (status.state, status.exit_code) == ("failed", 3)


def test_output_reaches_the_log_while_the_job_runs(settings, worktree):
    # print() without flush: only PYTHONUNBUFFERED gets it to the log before the job ends.
    (worktree / "train.py").write_text(
        "import os, time\n"
        "print('step 1 loss 2.3')\n"
        "while not os.path.exists('go'):\n"
        "    time.sleep(0.02)\n"
        "print('step 2 loss 1.9')\n"
    )
    launcher = LocalLauncher(settings, base_env=BASE_ENV)
    spec = make_spec(worktree, f"{PY} train.py")
    handle = launcher.launch(spec)

    wait_until(lambda: "step 1 loss 2.3" in spec.log_path.read_text())
    assert launcher.status(handle).state == "running"
    assert "step 2" not in spec.log_path.read_text()
    (worktree / "go").touch()
    assert wait_for_end(launcher, handle).state == "finished"
    assert spec.log_path.read_text().splitlines() == ["step 1 loss 2.3", "step 2 loss 1.9"]


def test_setup_runs_before_the_command_in_the_worktree(settings, worktree):
    launcher = LocalLauncher(settings, base_env=BASE_ENV)
    spec = make_spec(
        worktree, "echo command sees $(cat made-by-setup)", setup="echo setting up\necho setup-file > made-by-setup"
    )
    status = wait_for_end(launcher, launcher.launch(spec))
    assert status.state == "finished"
    assert spec.log_path.read_text().splitlines() == ["setting up", "command sees setup-file"]


@pytest.mark.parametrize("setup", ["echo first\nfalse\necho never", "echo first\nfalse && echo never"])
def test_failing_setup_fails_the_run_and_skips_the_command(settings, worktree, setup):
    launcher = LocalLauncher(settings, base_env=BASE_ENV)
    spec = make_spec(worktree, "echo command ran", setup=setup)
    status = wait_for_end(launcher, launcher.launch(spec))
    assert (status.state, status.exit_code) == ("failed", 1)
    log = spec.log_path.read_text()
    assert "first" in log and "launch.setup failed with exit code 1" in log
    assert "never" not in log and "command ran" not in log


ENV_PROBE = (
    'echo "mode=${WANDB_MODE-unset} key=${WANDB_API_KEY-unset} run=$FIX_AND_RELAUNCH_RUN_ID '
    "branch=$FIX_AND_RELAUNCH_BRANCH commit=$FIX_AND_RELAUNCH_COMMIT "
    'unbuffered=$PYTHONUNBUFFERED extra=$EXTRA path_kept=${PATH:+yes}"'
)


def test_environment_without_a_wandb_key_runs_offline(settings, worktree):
    launcher = LocalLauncher(settings, base_env=BASE_ENV)
    spec = make_spec(worktree, ENV_PROBE, env={"EXTRA": "passed"})
    wait_for_end(launcher, launcher.launch(spec))
    assert spec.log_path.read_text().strip() == (
        "mode=offline key=unset run=r-0000test branch=exp-a commit=c0ffee unbuffered=1 extra=passed path_kept=yes"
    )


def test_environment_with_a_wandb_key_stays_online(tmp_path, worktree):
    settings = Settings(state_dir=tmp_path / "state", wandb_api_key="k" * 40)
    launcher = LocalLauncher(settings, base_env=BASE_ENV)
    spec = make_spec(worktree, ENV_PROBE)
    wait_for_end(launcher, launcher.launch(spec))
    assert spec.log_path.read_text().startswith(f"mode=unset key={'k' * 40} ")


def test_a_job_starts_its_own_wandb_service_not_the_bots(settings, worktree):
    launcher = LocalLauncher(settings, base_env={**BASE_ENV, "WANDB_SERVICE": "3-7331-unix-/tmp/wandb/socket"})
    spec = make_spec(worktree, 'echo "service=${WANDB_SERVICE-unset}"')
    wait_for_end(launcher, launcher.launch(spec))
    assert spec.log_path.read_text().strip() == "service=unset"


BOT_SECRETS = {
    "GITHUB_PRIVATE_KEY": "-----BEGIN RSA PRIVATE KEY-----xyz",
    "GITHUB_PRIVATE_KEY_PATH": "/srv/app.pem",
    "GITHUB_WEBHOOK_SECRET": "hook-secret-1",
    "WANDB_WEBHOOK_SECRET": "wandb-hook-secret",
    "ANTHROPIC_API_KEY": "sk-ant-secret",
    "GITHUB_TOKEN": "ghs_installationtoken",
    "GH_TOKEN": "ghp_usertoken",
    "MY_COPY_OF_THE_KEY": "sk-ant-secret",
}
USER_VARS = {"CUDA_VISIBLE_DEVICES": "0,1", "HF_TOKEN": "hf_user_token", "WANDB_API_KEY": "w" * 40}


def secret_settings(tmp_path: Path) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        wandb_api_key="w" * 40,
        anthropic_api_key="sk-ant-secret",
        github_private_key="-----BEGIN RSA PRIVATE KEY-----xyz",
        github_webhook_secret="hook-secret-1",
        wandb_webhook_secret="wandb-hook-secret",
    )


def test_a_local_job_gets_none_of_the_bots_secrets(tmp_path, worktree):
    launcher = LocalLauncher(secret_settings(tmp_path), base_env={**BASE_ENV, **BOT_SECRETS, **USER_VARS})
    spec = make_spec(
        worktree, f"{PY} -c 'import json, os; print(json.dumps(dict(os.environ)))'", env={"RUN_VAR": "hook-secret-1"}
    )
    assert wait_for_end(launcher, launcher.launch(spec)).state == "finished"
    job_env = json.loads(spec.log_path.read_text())
    assert not set(BOT_SECRETS) & set(job_env) and "RUN_VAR" not in job_env
    assert not [name for name, value in job_env.items() if any(secret in value for secret in BOT_SECRETS.values())]
    assert {name: job_env.get(name) for name in USER_VARS} == USER_VARS
    assert job_env.get("PATH") == BASE_ENV["PATH"]


def test_job_is_detached_from_the_launcher(settings, worktree):
    launcher = LocalLauncher(settings, base_env=BASE_ENV)
    handle = launcher.launch(make_spec(worktree, "sleep 30"))
    try:
        assert os.getsid(handle["pid"]) != os.getsid(0)  # not in our session
        assert os.getpgid(handle["pid"]) == handle["pgid"] == handle["pid"]
        assert Path(f"/proc/{handle['supervisor_pid']}/stat").read_text().split(") ")[1].split()[1] != str(os.getpid())
    finally:
        launcher.cancel(handle)


def test_cancel_kills_the_whole_process_group(settings, worktree):
    launcher = LocalLauncher(settings, base_env=BASE_ENV)
    handle = launcher.launch(make_spec(worktree, "sleep 300 & echo $! > child.pid; sleep 300"))
    wait_until(lambda: (worktree / "child.pid").exists() and (worktree / "child.pid").read_text().strip())
    grandchild = int((worktree / "child.pid").read_text())
    assert alive(grandchild)

    launcher.cancel(handle)
    wait_until(lambda: not alive(grandchild), timeout=5)
    assert not alive(handle["pid"])
    status = launcher.status(handle)
    assert status.state == "killed"
    launcher.cancel(handle)  # cancelling an ended run is harmless
    assert launcher.status(handle).state == "killed"


def test_cancel_escalates_to_sigkill_after_the_grace_period(settings, worktree):
    launcher = LocalLauncher(settings, base_env=BASE_ENV, grace_s=0.5)
    handle = launcher.launch(make_spec(worktree, "trap '' TERM; touch ready; sleep 300 & wait; sleep 300"))
    wait_until(lambda: (worktree / "ready").exists())  # SIGTERM is ignored from here on
    started = time.monotonic()
    launcher.cancel(handle)
    assert time.monotonic() - started >= 0.5
    assert not alive(handle["pid"])
    status = launcher.status(handle)
    assert (status.state, status.exit_code) == ("killed", 137)


def test_a_vanished_supervisor_without_status_means_crashed(settings, worktree):
    launcher = LocalLauncher(settings, base_env=BASE_ENV)
    handle = launcher.launch(make_spec(worktree, "sleep 300"))
    os.kill(handle["supervisor_pid"], signal.SIGKILL)
    wait_until(lambda: not alive(handle["supervisor_pid"]))
    # The job itself still runs, orphaned: that is running, not crashed.
    assert launcher.status(handle).state == "running"
    os.killpg(handle["pgid"], signal.SIGKILL)
    wait_until(lambda: not alive(handle["pid"]))
    status = launcher.status(handle)
    assert (status.state, status.exit_code) == ("crashed", None)


def test_a_reused_pid_is_not_mistaken_for_the_run(settings, worktree):
    launcher = LocalLauncher(settings, base_env=BASE_ENV)
    handle = launcher.launch(make_spec(worktree, "true"))
    wait_for_end(launcher, handle)
    Path(handle["status_path"]).unlink()  # as if the supervisor died before writing it
    own_start = int(Path("/proc/self/stat").read_text().rsplit(") ", 1)[1].split()[19])
    # This test's own pid, recorded with its real start time, looks alive ...
    assert launcher.status({**handle, "supervisor_pid": os.getpid(), "supervisor_start": own_start}).state == "running"
    # ... but the same pid with another start time is some other, older process.
    assert (
        launcher.status({**handle, "supervisor_pid": os.getpid(), "supervisor_start": own_start - 1}).state == "crashed"
    )


def test_a_run_of_another_host_is_neither_guessed_at_nor_cancelled_here(settings, tmp_path):
    # A process group here whose ids happen to be those the other host's handle recorded.
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        handle = {
            "backend": "local",
            "host": "another-host.example",
            "run_id": "r-elsewhere",
            "log_path": str(tmp_path / "output.log"),
            "status_path": str(tmp_path / "output.log.status.json"),
            "cancel_path": str(tmp_path / "output.log.cancel"),
            "pid": bystander.pid,
            "pgid": bystander.pid,
            "supervisor_pid": bystander.pid,
            "started_at": time.time(),
        }
        launcher = LocalLauncher(settings, base_env=BASE_ENV, grace_s=0.5)
        status = launcher.status(handle)
        assert status.state == "running" and "another-host.example" in status.reason
        with pytest.raises(OperationFailed, match="runs on host another-host.example.*cancel it from that host"):
            launcher.cancel(handle)
        time.sleep(0.2)
        assert bystander.poll() is None and not (tmp_path / "output.log.cancel").exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_launch_into_a_missing_worktree_is_bad_input(settings, tmp_path):
    with pytest.raises(BadInput):
        LocalLauncher(settings).launch(make_spec(tmp_path / "nope", "true"))


# -- surviving the launcher's death ------------------------------------------------------

LAUNCHING_BOT = """
import sys, time, copy
from pathlib import Path
from bot.core.settings import Settings
from bot.launchers import start_run
from bot.repo.config import DEFAULTS
from bot.store.runs import StateStore
state_dir, worktree = Path(sys.argv[1]), Path(sys.argv[2])
settings = Settings(state_dir=state_dir)
config = copy.deepcopy(DEFAULTS)
config["launch"]["command"] = "echo started; while [ ! -f go ]; do sleep 0.05; done; echo finished after the bot died"
record = start_run(StateStore.open(state_dir), settings, config, repo=str(worktree), branch="exp-a",
                   commit="c0ffee", worktree=worktree)
print(record.id, flush=True)
time.sleep(600)
"""


def test_run_outlives_a_killed_launcher_and_is_found_again(settings, worktree):
    bot = subprocess.Popen(
        [sys.executable, "-c", LAUNCHING_BOT, str(settings.state_dir), str(worktree)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        run_id = bot.stdout.readline().strip()
        assert run_id.startswith("r-"), run_id
    finally:
        bot.kill()
        bot.wait(timeout=10)
    assert bot.returncode == -signal.SIGKILL

    store = StateStore.open(settings.state_dir)  # the restarted bot's view
    record = store.get_run(run_id)
    assert record.state == "running" and record.branch == "exp-a"
    wait_until(lambda: "started" in Path(record.log_path).read_text())
    assert [r.id for r in active_runs(store, settings, branch="exp-a")] == [run_id]
    assert alive(record.handle["pid"])

    (worktree / "go").touch()
    # The supervisor records the end in the store itself; nobody has to ask.
    wait_until(lambda: store.get_run(run_id).state != "running")
    record = store.get_run(run_id)
    assert (record.state, record.exit_code) == ("finished", 0)
    assert record.ended_at >= record.started_at
    assert Path(record.log_path).read_text().splitlines() == ["started", "finished after the bot died"]
    assert active_runs(store, settings) == []


# -- the state store, through the launchers ------------------------------------------------


def test_start_refresh_and_cancel_through_the_store(settings, store, worktree):
    config = config_with(command="sleep 300")
    slow = start_run(store, settings, config, repo="o/r", branch="slow", commit="1", worktree=worktree)
    quick = start_run(
        store, settings, config_with(command="exit 4"), repo="o/r", branch="quick", commit="2", worktree=worktree
    )
    assert slow.state == "running" and slow.handle["pid"]
    wait_until(lambda: refresh_run(store, settings, store.get_run(quick.id)).state == "failed")
    assert store.get_run(quick.id).exit_code == 4
    assert [r.id for r in active_runs(store, settings, repo="o/r")] == [slow.id]

    cancelled = cancel_run(store, settings, slow.id)
    assert cancelled.state == "killed"
    assert active_runs(store, settings) == []
    with pytest.raises(BadInput):
        cancel_run(store, settings, "r-unknown")


def test_refresh_records_a_crash_the_supervisor_could_not(settings, store, worktree):
    record = start_run(
        store, settings, config_with(command="sleep 300"), repo="o/r", branch="b", commit="1", worktree=worktree
    )
    os.kill(record.handle["supervisor_pid"], signal.SIGKILL)
    os.killpg(record.handle["pgid"], signal.SIGKILL)
    wait_until(lambda: not alive(record.handle["pid"]) and not alive(record.handle["supervisor_pid"]))
    refreshed = refresh_run(store, settings, store.get_run(record.id))
    assert refreshed.state == "crashed" and refreshed.ended_at is not None
    assert store.get_run(record.id).state == "crashed"


def test_a_record_left_without_a_handle_by_a_crash_stops_blocking_the_branch(settings, store):
    # What a bot killed between add_run and update_handle leaves behind: queued, no handle.
    lost = store.add_run(repo="o/r", branch="exp-a", backend="local", created_at=time.time() - 3600)
    recent = store.add_run(repo="o/r", branch="exp-b", backend="local")  # its launch may be under way
    assert [r.id for r in active_runs(store, settings, repo="o/r")] == [recent.id]
    record = store.get_run(lost.id)
    assert record.state == "crashed" and record.ended_at is not None
    assert "launch was lost" in record.handle["end_reason"]
    assert refresh_run(store, settings, store.get_run(recent.id)).state == "queued"
    assert active_runs(store, settings, repo="o/r", branch="exp-a") == []


# -- a launch the bot did not see finish -----------------------------------------------------


def recorded_then_launched(store: StateStore, launcher: LocalLauncher, spec: LaunchSpec) -> dict:
    """What a bot SIGKILLed inside `start_run`, after its launcher started the job and before the
    handle was stored, leaves behind: the run recorded (queued, no handle) and the job running."""
    store.add_run(
        id=spec.run_id,
        repo="o/r",
        branch=spec.branch,
        commit=spec.commit,
        backend=launcher.name,
        log_path=str(spec.log_path),
    )
    return launcher.launch(spec)


@pytest.mark.parametrize("launcher_class", [LocalLauncher, CommandLauncher])
def test_a_run_whose_handle_was_never_stored_is_adopted_from_its_status_file(settings, store, worktree, launcher_class):
    spec = make_spec(worktree, "echo job id: 77; while [ ! -f go ]; do sleep 0.05; done", run_id="r-0000adpt")
    handle = recorded_then_launched(store, launcher_class(settings), spec)
    assert store.get_run(spec.run_id).handle == {}

    record = refresh_run(store, settings, store.get_run(spec.run_id))

    assert record.state == "running" and record.started_at == handle["started_at"]
    assert {key: record.handle[key] for key in handle} == handle
    assert refresh_run(store, settings, record).handle == record.handle, "adopting again changes nothing"
    assert [r.id for r in active_runs(store, settings, repo="o/r")] == [spec.run_id]
    (worktree / "go").touch()
    wait_until(lambda: refresh_run(store, settings, store.get_run(spec.run_id)).state != "running")
    ended = store.get_run(spec.run_id)
    assert (ended.state, ended.exit_code) == ("finished", 0)
    assert ended.handle.get("job_id") == ("77" if launcher_class is CommandLauncher else None)


def test_a_run_that_ended_before_anyone_adopted_it_still_gets_its_handle(settings, store, worktree):
    spec = make_spec(worktree, "exit 3", run_id="r-0000gone")
    handle = recorded_then_launched(store, LocalLauncher(settings), spec)
    # Nobody refreshes: the supervisor records the end, and the handle the bot never stored.
    wait_until(lambda: store.get_run(spec.run_id).state != "queued")
    record = store.get_run(spec.run_id)
    assert (record.state, record.exit_code, record.handle) == ("failed", 3, handle)


def test_adopting_a_run_whose_launch_has_not_returned_stores_what_the_launch_stores(
    settings, store, worktree, monkeypatch
):
    adopted = []

    class WatchedMidLaunch(LocalLauncher):
        def launch(self, spec: LaunchSpec) -> dict:
            handle = super().launch(spec)
            # Another process (the server's watcher) refreshes the run before this launch returns.
            adopted.append(refresh_run(store, settings, store.get_run(spec.run_id)))
            return handle

    monkeypatch.setitem(launchers._FACTORIES, "watched", WatchedMidLaunch)
    record = start_run(
        store,
        settings,
        config_with(backend="watched", command="sleep 300"),
        repo="o/r",
        branch="b",
        commit="1",
        worktree=worktree,
    )
    assert adopted[0].state == "running" and adopted[0].handle == record.handle
    assert (record.state, record.started_at) == ("running", adopted[0].started_at)
    assert cancel_run(store, settings, record.id).state == "killed"


def interrupted_launch(store, settings, worktree, monkeypatch, *, started: bool):
    """`start_run` interrupted (Ctrl-C) inside its launcher's `launch`, after or before the job started."""

    class Interrupted(LocalLauncher):
        def launch(self, spec: LaunchSpec) -> dict:
            if started:
                super().launch(spec)
                wait_until(lambda: self.adopt(store.get_run(spec.run_id)) is not None)  # its status file
            raise KeyboardInterrupt

    monkeypatch.setitem(launchers._FACTORIES, "interrupted", Interrupted)
    config = config_with(backend="interrupted", command="sleep 300")
    with pytest.raises(KeyboardInterrupt):
        start_run(store, settings, config, repo="o/r", branch="b", commit="1", worktree=worktree, run_id="r-0000intr")
    return store.get_run("r-0000intr")


def test_a_launch_interrupted_after_the_job_started_records_it_running(settings, store, worktree, monkeypatch):
    record = interrupted_launch(store, settings, worktree, monkeypatch, started=True)
    assert record.state == "running" and record.handle.get("pgid"), "followed, never marked failed"
    assert [r.id for r in active_runs(store, settings, repo="o/r", branch="b")] == [record.id]
    assert cancel_run(store, settings, record.id).state == "killed"


def test_a_launch_interrupted_before_the_job_started_is_left_to_adopt_or_lose(settings, store, worktree, monkeypatch):
    record = interrupted_launch(store, settings, worktree, monkeypatch, started=False)
    assert (record.state, record.handle) == ("queued", {}), "as a bot killed there leaves it"
    assert refresh_run(store, settings, record).state == "queued", "its launch may still be under way"


def test_a_run_whose_supervisor_never_started_waits_out_the_launch_then_is_lost(settings, store, tmp_path):
    log_path = tmp_path / "runs" / "r-0000none" / "output.log"
    log_path.parent.mkdir(parents=True)
    log_path.touch()  # the launcher makes the log before it starts the supervisor
    record = store.add_run(id="r-0000none", repo="o/r", branch="b", backend="local", log_path=str(log_path))
    assert refresh_run(store, settings, record).state == "queued", "its launch may still be under way"
    store.update_run(record.id, created_at=time.time() - LocalLauncher(settings).launch_timeout_s - 1)
    lost = refresh_run(store, settings, store.get_run(record.id))
    assert lost.state == "crashed" and "launch was lost" in lost.handle["end_reason"]


def test_a_launch_that_cannot_start_is_an_error_and_records_no_run(settings, store, tmp_path):
    with pytest.raises(BadInput):
        start_run(store, settings, config_with(), repo="o/r", branch="b", commit="1", worktree=tmp_path / "missing")
    assert store.list_runs() == [], "nothing started: no failed run for diagnose or fix to pick up"


def test_get_launcher_knows_local_and_command_and_refuses_others(settings):
    assert isinstance(get_launcher("local", settings, config_with()), LocalLauncher)
    assert isinstance(get_launcher("command", settings, config_with()), CommandLauncher)
    with pytest.raises(BadInput, match="not-a-backend"):
        get_launcher("not-a-backend", settings, config_with())


# -- command template ---------------------------------------------------------------------

ARGS_SCRIPT = "import json, sys\njson.dump(sys.argv[1:], open('args.json', 'w'))\nprint('Submitted batch job 4242')\n"


@pytest.mark.parametrize(
    "branch",
    [
        "x;touch pwned;#",
        "x$(touch pwned)",
        "x`touch pwned`",
        "x' ; touch pwned ; echo '",
        "x\ntouch pwned",
        "x && touch pwned",
    ],
)
def test_hostile_branch_names_cannot_inject(settings, worktree, branch):
    (worktree / "launch_job.py").write_text(ARGS_SCRIPT)
    launcher = CommandLauncher(settings, base_env=BASE_ENV)
    spec = make_spec(
        worktree, f"{PY} launch_job.py --branch {{branch}} --commit {{commit}} --run {{run_id}}", branch=branch
    )
    status = wait_for_end(launcher, launcher.launch(spec))
    assert status.state == "finished", spec.log_path.read_text()
    assert not (worktree / "pwned").exists()
    args = json.loads((worktree / "args.json").read_text())
    assert args == ["--branch", branch, "--commit", "c0ffee", "--run", "r-0000test"]


def test_command_backend_reports_the_scripts_exit_code_and_job_id(settings, store, worktree):
    (worktree / "launch_job.py").write_text(ARGS_SCRIPT + "sys.exit(int(sys.argv[2]))\n")
    for code, state in ((0, "finished"), (5, "failed")):
        config = config_with(
            backend="command", command=f"{PY} launch_job.py --code {code} --worktree {{worktree}} --repo {{repo}}"
        )
        record = start_run(store, settings, config, repo="o/r", branch="b", commit="1", worktree=worktree)
        assert record.backend == "command"
        wait_until(lambda run_id=record.id: refresh_run(store, settings, store.get_run(run_id)).state != "running")
        record = store.get_run(record.id)
        assert (record.state, record.exit_code) == (state, code)
        assert record.handle["job_id"] == "4242"
        args = json.loads((worktree / "args.json").read_text())
        assert args[2:] == ["--worktree", str(worktree), "--repo", "o/r"]


@pytest.mark.parametrize(
    "template",
    [
        "run {nope}",
        "run {branch!r}",
        "run {branch:>20}",
        "run {}",
        "run {branch.upper}",
        "run {0}",
        "run {branch",
        "run }",
        "echo ${HOME}",
    ],
)
def test_unknown_or_odd_placeholders_are_bad_input(template):
    with pytest.raises(BadInput, match="launch.command"):
        render_command(template, {"branch": "b", "commit": "c", "repo": "r", "worktree": "w", "run_id": "i"})


def test_render_quotes_values_and_keeps_literal_braces():
    values = {"branch": "feat/a b", "commit": "abc", "repo": "o/r", "worktree": "/w t", "run_id": "r-1"}
    rendered = render_command("go {branch} {commit} {{not_a_field}} {worktree}", values)
    assert rendered == "go 'feat/a b' abc {not_a_field} '/w t'"
    assert shlex.split(rendered) == ["go", "feat/a b", "abc", "{not_a_field}", "/w t"]


@pytest.mark.parametrize(
    "template",
    [
        'run --branch "{branch}"',
        "run --branch '{branch}'",
        'run "--branch={branch} now"',
        "run '--commit {commit}' --branch {branch}",
        'run --branch="{branch}"',
        "run --branch=$'{branch}'",
        "run \\{branch}",
        'run {branch}"x"',
        'sh -c "train --branch {branch}"',
    ],
)
def test_placeholders_in_or_beside_shell_quotes_are_refused(template):
    values = {"branch": "b", "commit": "c", "repo": "r", "worktree": "w", "run_id": "i"}
    with pytest.raises(BadInput, match="don't quote placeholders; they are quoted for you"):
        render_command(template, values)


@pytest.mark.parametrize(
    "template, argv",
    [
        (
            "run --branch {branch} '{{literal}}' \"quoted text\" {commit}",
            ["run", "--branch", "x$(id)", "{literal}", "quoted text", "c"],
        ),
        ("run \\\"x\\\" --branch={branch} 'it''s' {commit}", ["run", '"x"', "--branch=x$(id)", "its", "c"]),
    ],
)
def test_placeholders_outside_quotes_still_render(template, argv):
    values = {"branch": "x$(id)", "commit": "c", "repo": "r", "worktree": "w", "run_id": "i"}
    assert shlex.split(render_command(template, values)) == argv


def test_a_quoted_placeholder_never_reaches_the_shell(settings, worktree):
    launcher = CommandLauncher(settings, base_env=BASE_ENV)
    spec = make_spec(worktree, 'echo --branch "{branch}"', branch="x$(touch pwned)")
    with pytest.raises(BadInput, match="don't quote placeholders"):
        launcher.launch(spec)
    time.sleep(0.3)
    assert not (worktree / "pwned").exists() and not spec.log_path.exists()


@pytest.mark.parametrize(
    "text, job_id",
    [
        ("Submitted batch job 123\n", "123"),
        ("Job submission 'raysubmit_AbC123' submitted successfully\n", "raysubmit_AbC123"),
        ("queued\nJOB_ID=train-77\n", "train-77"),
        ("job id: 1\nretrying\nJob ID: 2\n", "2"),
        ("no id printed here\n", None),
    ],
)
def test_find_job_id(text, job_id):
    assert find_job_id(text) == job_id
