"""The sandbox: what is decided (policy), what a job sees (view, environment), and, with the real
bubblewrap, what holds: the filesystem, the user, the limits, a graceful stop, the opt-out."""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bot.cli.main import main as cli
from bot.core.errors import BadInput
from bot.core.settings import SandboxSettings, Settings
from bot.fixers.patch import PatchError, run_smoke
from bot.launchers import LaunchSpec, start_run
from bot.launchers.local import LocalLauncher
from bot.launchers.sandbox import (
    Limits,
    Mode,
    Network,
    SandboxRefused,
    SandboxSpec,
    cgroups,
    policy_for,
    run_command,
    sandbox_for,
    serve_settings,
    tool,
    view,
)
from bot.launchers.sandbox.policy import DEFAULT_LIMITS
from bot.repo.config import DEFAULTS, parse
from bot.store.runs import StateStore
from tests.support import experiment
from tests.support.git_repos import git, make_origin
from tests.support.launchers import wait_for_end
from tests.support.sandbox import require_sandbox
from tests.support.waiting import wait_until

PY = shlex.quote(sys.executable)


def serving(settings: Settings, **changes) -> Settings:
    return settings.with_sandbox(auto=True, **changes)


def config(sandbox=None) -> dict:
    return {"launch": {**DEFAULTS["launch"], **({"sandbox": sandbox} if sandbox is not None else {})}}


# -- what the repo config and the operator ask for --------------------------------------


@pytest.mark.parametrize(
    "value,mode",
    [("auto", Mode.AUTO), ("on", Mode.ON), (True, Mode.ON), (False, Mode.OFF), (None, Mode.AUTO)],
)
def test_the_mode_is_a_word_or_yamls_boolean(value, mode):
    assert SandboxSpec.parse(value).mode == mode


def test_a_mapping_sets_mode_network_and_limits():
    spec = SandboxSpec.parse(
        {
            "mode": "on",
            "network": False,
            "memory": "1.5G",
            "processes": 64,
            "cpu_time": "2h",
            "disk": 1024,
            "wall_time": "90s",
        }
    )
    assert (spec.mode, spec.network) == (Mode.ON, Network.OFF)
    assert spec.limits == Limits(memory=3 << 29, processes=64, cpu_time=7200, disk=1024, wall_time=90)


@pytest.mark.parametrize(
    "text,error",
    [
        ("sandbox: maybe", "'launch.sandbox' must be auto, on or off, got 'maybe'"),
        ("sandbox: {memory: lots}", "'launch.sandbox.memory' must be a size such as 512M or 16G"),
        ("sandbox: {processes: 0}", "'launch.sandbox.processes' must be a whole number of at least 1"),
        ("sandbox: {wall_time: -5}", "'launch.sandbox.wall_time' must be a duration"),
        ("sandbox: {cpus: 2}", "unknown key 'launch.sandbox.cpus'"),
        ("sandbox: {network: maybe}", "'launch.sandbox.network' must be on or off"),
        ("sandbox: 3", "'launch.sandbox' must be a string or true or false or a mapping, got int 3"),
    ],
)
def test_a_bad_sandbox_key_is_refused_naming_it(text, error):
    with pytest.raises(BadInput) as caught:
        parse(f"launch:\n  {text}\n")
    assert error in str(caught.value) and str(caught.value).startswith(".github/fix-and-relaunch.yml:2: ")


def test_the_default_is_auto():
    assert parse("")["launch"]["sandbox"] == "auto"


@pytest.mark.parametrize(
    "serve,choice,value,enabled",
    [
        (False, None, "auto", False),  # the command line: auto is off
        (True, None, "auto", True),  # serve: auto is on
        (False, None, "on", True),
        (False, True, "off", True),  # --sandbox wins over the repo config
        (False, False, "on", False),  # --no-sandbox too
        (True, None, "on", True),
    ],
)
def test_who_decides(settings, serve, choice, value, enabled):
    settings = settings.with_sandbox(auto=serve, choice=choice)
    assert policy_for(value, settings).enabled is enabled


def test_under_serve_a_branch_cannot_switch_the_sandbox_off(settings):
    with pytest.raises(BadInput, match="launch.sandbox: off is not allowed here.*FIX_AND_RELAUNCH_SANDBOX=optional"):
        policy_for("off", serving(settings))
    assert policy_for("off", serving(settings, required=False)).enabled is False


def test_the_operator_can_require_it_on_the_command_line_too(settings):
    required = settings.with_sandbox(required=True)
    assert policy_for("auto", required).enabled is True
    with pytest.raises(BadInput, match="--no-sandbox is not allowed here"):
        policy_for("on", required.with_sandbox(choice=False))


def test_the_operators_caps_bound_the_repos_limits(settings):
    capped = settings.with_sandbox(limits="memory=1G, wall_time=1h")
    policy = policy_for({"mode": "on", "memory": "4G", "disk": "2G"}, capped)
    assert policy.limits == Limits(memory=1 << 30, processes=DEFAULT_LIMITS.processes, disk=2 << 30, wall_time=3600)
    with pytest.raises(BadInput, match="FIX_AND_RELAUNCH_SANDBOX_LIMITS: expected name=value"):
        policy_for("on", settings.with_sandbox(limits="memory"))


def test_the_operators_settings_come_from_the_environment(tmp_path):
    settings = Settings.from_env(
        {
            "FIX_AND_RELAUNCH_STATE_DIR": str(tmp_path),
            "FIX_AND_RELAUNCH_SANDBOX": "required",
            "FIX_AND_RELAUNCH_UNSANDBOXED_JOBS": "i-understand",
            "FIX_AND_RELAUNCH_SANDBOX_LIMITS": "memory=8G",
            "FIX_AND_RELAUNCH_SANDBOX_PATHS": "/data/a:/data/b",
            "FIX_AND_RELAUNCH_SANDBOX_ENV": "HF_TOKEN, CUDA_VISIBLE_DEVICES",
        }
    )
    assert settings.sandbox == SandboxSettings(
        required=True,
        unsandboxed_ok=True,
        limits="memory=8G",
        paths=("/data/a", "/data/b"),
        env=("HF_TOKEN", "CUDA_VISIBLE_DEVICES"),
    )
    assert Settings.from_env({"FIX_AND_RELAUNCH_UNSANDBOXED_JOBS": "yes"}).sandbox.unsandboxed_ok is False
    with pytest.raises(BadInput, match="FIX_AND_RELAUNCH_SANDBOX must be 'required' or 'optional'"):
        Settings.from_env({"FIX_AND_RELAUNCH_SANDBOX": "on"})


# -- what a job sees -------------------------------------------------------------------


def test_the_environment_keeps_the_machine_wandb_and_the_run_never_the_bots_secrets():
    env = {
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "WANDB_MODE": "offline",
        "WANDB_API_KEY": "k" * 40,
        "FIX_AND_RELAUNCH_RUN_ID": "r-1",
        "FIX_AND_RELAUNCH_STATE_DIR": "/srv/state",
        "WANDB_WEBHOOK_SECRET": "s",
        "GITHUB_TOKEN": "t",
        "AWS_SECRET_ACCESS_KEY": "a",
        "HOME": "/root",
        "HF_TOKEN": "h",
    }
    clean = view.environment(env, keep=["HF_TOKEN", "GITHUB_TOKEN"])
    assert clean == {
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "WANDB_MODE": "offline",
        "WANDB_API_KEY": "k" * 40,
        "FIX_AND_RELAUNCH_RUN_ID": "r-1",
        "HOME": view.HOME,
        "HF_TOKEN": "h",
    }


def test_a_named_file_that_is_no_interpreter_shows_nothing(tmp_path):
    secret = tmp_path / "ssh" / "id_rsa"
    secret.parent.mkdir()
    secret.write_text("key")
    secret.chmod(0o755)
    assert view.toolchain("", f"cat {secret}; {secret}") == []


def test_an_interpreter_shows_its_venv_and_its_installation():
    found = view.toolchain("", f"{sys.executable} main.py")
    assert Path(sys.prefix) in found
    assert Path(sys.base_prefix).resolve() in [p.resolve() for p in found]


def test_version_manager_shims_on_path_show_their_manager(tmp_path):
    # pyenv's `python` on PATH is a shim that execs $PYENV_ROOT/libexec/pyenv: without the root
    # the job's `python main.py` fails in the sandbox.
    pyenv = tmp_path / ".pyenv"
    (pyenv / "shims").mkdir(parents=True)
    (pyenv / "libexec").mkdir()
    plain = tmp_path / "tools" / "shims"  # a folder merely called shims shows only itself
    plain.mkdir(parents=True)
    found = view.toolchain(f"{pyenv / 'shims'}:{plain}", "python main.py")
    assert pyenv in found and plain in found and plain.parent not in found


def test_a_path_folder_holding_the_bots_state_is_left_out(tmp_path):
    state = tmp_path / "bin" / "state"
    state.mkdir(parents=True)
    worktree = tmp_path / "wt"
    worktree.mkdir()
    shown = view.build_view(worktree=worktree, env={"PATH": f"{tmp_path / 'bin'}:/usr/bin"}, script="", hidden=[state])
    assert tmp_path / "bin" not in shown.read_only


def test_a_worktree_or_operator_folder_holding_a_hidden_path_is_refused(tmp_path, settings):
    require_sandbox()
    worktree = tmp_path / "wt"
    (worktree / "keys").mkdir(parents=True)
    key = worktree / "keys" / "app.pem"
    sandbox = sandbox_for(config("on"), settings.with_sandbox(hidden=(str(key),)))
    with pytest.raises(SandboxRefused, match="holds .*app.pem, which a job must never see"):
        sandbox.prepare(["true"], worktree=worktree, env=os.environ, name="t")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    sandbox = sandbox_for(config("on"), settings.with_sandbox(paths=(str(tmp_path),)))
    with pytest.raises(SandboxRefused, match="holds .*state"):
        sandbox.prepare(["true"], worktree=elsewhere, env=os.environ, name="t")


def test_a_linked_worktrees_git_folders_are_shown_read_only(tmp_path):
    _, clone = make_origin(tmp_path)
    git(clone, "worktree", "add", "-q", str(clone / ".worktrees" / "b"), "-b", "b")
    assert view.git_metadata(clone / ".worktrees" / "b") == [(clone / ".git").resolve()]
    assert view.git_metadata(clone) == []


# -- what holds, with the real tool ----------------------------------------------------------


@pytest.fixture
def sandboxed(settings: Settings):
    require_sandbox()
    return lambda **sandbox: sandbox_for(config({"mode": "on", **sandbox}), settings)


def run(sandbox, worktree: Path, script: str, timeout: float = 60, **kw):
    return run_command(
        ["bash", "-c", script], cwd=worktree, env=os.environ, timeout=timeout, sandbox=sandbox, name="t", **kw
    )


def test_a_job_runs_as_nobody_in_its_worktree_with_a_private_tmp(sandboxed, worktree, tmp_path):
    (tmp_path / "host-file").write_text("host")
    done = run(
        sandboxed(),
        worktree,
        f"id -u; pwd; echo hi > out.txt; echo tmp > /tmp/x; cat /tmp/x; ls {tmp_path}; cat {tmp_path}/host-file; echo $HOME",
    )
    lines = done.output.splitlines()
    assert lines[:3] == ["65534", str(worktree), "tmp"]
    assert "host-file" not in done.output.replace(f"{tmp_path}/host-file", "")
    assert "No such file or directory" in done.output and lines[-1] == view.HOME
    assert (worktree / "out.txt").read_text() == "hi\n"
    assert not Path("/tmp/x").exists() or Path("/tmp/x").read_text() != "tmp\n"


def test_the_wall_time_limit_stops_a_job_with_the_reason(sandboxed, worktree):
    started = time.monotonic()
    done = run(sandboxed(wall_time="1s"), worktree, "sleep 30")
    assert done.reason == "TIMEOUT: it ran past its wall-time limit of 1s"
    assert time.monotonic() - started < 10


def test_the_cpu_time_limit_stops_a_busy_process(sandboxed, worktree):
    done = run(sandboxed(cpu_time=1), worktree, "while :; do :; done")
    assert done.reason == "TIMEOUT: a process used more than its CPU time limit of 1s"


def test_the_memory_limit_ends_a_hog_as_out_of_memory(sandboxed, worktree):
    done = run(sandboxed(memory="128M"), worktree, f"{PY} -c 'x = []\nwhile True: x.append(bytearray(8 << 20))'")
    assert done.returncode != 0
    if "memory" in cgroups.available():
        assert done.reason == "OUT_OF_MEMORY: the kernel killed it for using more than its memory limit of 128MB"
    else:  # RLIMIT_DATA: the allocation fails
        assert "MemoryError" in done.output


def test_a_file_past_the_disk_limit_is_reported(sandboxed, worktree):
    done = run(sandboxed(disk="1M"), worktree, "head -c 3000000 /dev/zero > big.bin")
    # The file's limit ("a file reached its disk limit of 1MB"), or the watch on the disk's
    # growth when it looks first ("it wrote …, over its disk limit of 1MB").
    assert done.reason is not None and done.reason.startswith("Disk quota exceeded: ")
    assert done.reason.endswith("disk limit of 1MB")
    assert (worktree / "big.bin").stat().st_size <= 1 << 20


def test_with_network_off_only_loopback_exists(sandboxed, worktree):
    done = run(sandboxed(network="off"), worktree, "cat /proc/net/dev | tail -n +3 | cut -d: -f1")
    assert [line.strip() for line in done.output.splitlines()] == ["lo"]


def test_a_job_cannot_write_to_the_system_or_raise_its_limits(sandboxed, worktree):
    done = run(sandboxed(processes=50), worktree, "touch /usr/owned; ulimit -u 100000; echo $?; ulimit -u")
    assert "Read-only file system" in done.output
    assert done.output.splitlines()[-1] == "50"


def test_the_cgroups_of_a_run_are_removed_after_it(sandboxed, worktree):
    sandbox = sandboxed(memory="256M")
    prepared = sandbox.prepare(["true"], worktree=worktree, env=os.environ, name="cleanup")
    run(sandbox, worktree, "true")
    assert not any(Path(g.path).exists() for g in prepared.groups)


def test_the_smoke_check_runs_in_the_sandbox(sandboxed, worktree, tmp_path):
    (tmp_path / "outside").write_text("secret")
    with pytest.raises(PatchError, match="failed with exit status 1"):
        run_smoke(worktree, f"cat {tmp_path}/outside", 30, sandbox=sandboxed())
    with pytest.raises(PatchError, match="was stopped: TIMEOUT: it ran past its wall-time limit of 1s"):
        run_smoke(worktree, "sleep 20", 30, sandbox=sandboxed(wall_time=1))
    run_smoke(worktree, "test $(id -u) = 65534", 30, sandbox=sandboxed())


# -- the local launcher ------------------------------------------------------------------------


def spec(worktree: Path, command: str, run_id: str = "r-sandbox1") -> LaunchSpec:
    return LaunchSpec(
        repo=str(worktree),
        branch="exp",
        commit="c0ffee",
        worktree=worktree,
        command=command,
        log_path=worktree.parent / "runs" / run_id / "output.log",
        run_id=run_id,
    )


def test_a_cancelled_sandboxed_job_gets_its_term_and_ends_killed(settings, worktree):
    require_sandbox()
    job = "trap 'echo caught TERM; exit 3' TERM; echo started; while :; do sleep 0.1; done"
    launcher = LocalLauncher(settings, config("on"), grace_s=5)
    handle = launcher.launch(spec(worktree, job))
    log = Path(handle["log_path"])
    wait_until(lambda: "started" in log.read_text(), 30, "the job to start")
    launcher.cancel(handle)
    status = wait_for_end(launcher, handle)
    assert status.state == "killed"
    assert "caught TERM" in log.read_text(), "the job had its graceful stop"
    assert log.read_text().startswith("fix-and-relaunch: running in the sandbox; limits:")


def test_a_limit_ends_a_launched_run_failed_with_the_reason(settings, worktree):
    require_sandbox()
    store = StateStore.open(settings.state_dir)
    launch = {**config({"mode": "on", "wall_time": "1s"})["launch"], "command": "sleep 60"}
    record = start_run(
        store, settings, {"launch": launch}, repo=str(worktree), branch="exp", commit="c", worktree=worktree, env={}
    )
    wait_until(lambda: store.get_run(record.id).state == "failed", 30, "the run to fail")
    ended = store.get_run(record.id)
    assert ended.handle["end_reason"] == "TIMEOUT: it ran past its wall-time limit of 1s"


@pytest.fixture
def no_tool(monkeypatch):
    monkeypatch.setattr(tool, "check", lambda: tool.ToolCheck(None, "bubblewrap (bwrap) is not installed; install it"))


def test_without_the_tool_a_wanted_sandbox_is_refused_and_no_run_is_recorded(settings, worktree, no_tool):
    store = StateStore.open(settings.state_dir)
    with pytest.raises(SandboxRefused, match="not installed.*FIX_AND_RELAUNCH_UNSANDBOXED_JOBS=i-understand"):
        start_run(store, serving(settings), config(), repo=str(worktree), branch="exp", commit="c", worktree=worktree)
    assert store.list_runs() == []


def test_the_operators_opt_out_runs_it_unsandboxed_with_its_limits(settings, worktree, no_tool):
    launcher = LocalLauncher(serving(settings, unsandboxed_ok=True), config({"wall_time": "1s"}))
    handle = launcher.launch(spec(worktree, "echo uid $(id -u); sleep 30"))
    status = wait_for_end(launcher, handle)
    log = Path(handle["log_path"]).read_text()
    assert log.startswith("fix-and-relaunch: running UNSANDBOXED (FIX_AND_RELAUNCH_UNSANDBOXED_JOBS=i-understand)")
    assert f"uid {os.getuid()}" in log
    assert (status.state, status.reason) == ("failed", "TIMEOUT: it ran past its wall-time limit of 1s")


def test_serve_says_at_start_up_how_repository_code_runs(settings, caplog, monkeypatch):
    caplog.set_level(logging.INFO)
    if tool.check().tool is not None:
        assert serve_settings(settings).sandbox.auto is True
        assert "sandbox: bubblewrap" in caplog.text and "limits hold for memory:" in caplog.text
    caplog.clear()
    monkeypatch.setattr(tool, "check", lambda: tool.ToolCheck(None, "bubblewrap (bwrap) is not installed"))
    serve_settings(settings)
    assert "will be REFUSED" in caplog.text
    caplog.clear()
    serve_settings(settings.with_sandbox(unsandboxed_ok=True))
    assert "run UNSANDBOXED" in caplog.text
    with pytest.raises(BadInput, match="FIX_AND_RELAUNCH_SANDBOX_LIMITS"):
        serve_settings(settings.with_sandbox(limits="memory=lots"))


def test_launch_sandbox_flags_on_the_command_line(tmp_path, monkeypatch, capsys):
    require_sandbox()
    _, clone = experiment.build(tmp_path / "exp")
    code = cli(["launch", "--repo", str(clone), "--branch", "exp-data", "--wait", "--json", "--sandbox"])
    out = capsys.readouterr().out
    log = Path(json.loads(out)["log_path"]).read_text()
    assert code == 1 and log.startswith("fix-and-relaunch: running in the sandbox")
    monkeypatch.setenv("FIX_AND_RELAUNCH_SANDBOX", "required")
    code = cli(["launch", "--repo", str(clone), "--branch", "exp-data", "--no-sandbox"])
    assert code == 2 and "--no-sandbox is not allowed here" in capsys.readouterr().err


def test_a_settings_copy_keeps_the_sandbox(settings):
    assert replace(settings, github_app_id="1").sandbox == settings.sandbox
