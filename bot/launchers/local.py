"""The default backend: run the repo's own setup and command on this machine.

The job runs under a detached supervisor (bot/launchers/supervise.py), in a new session, so
it outlives the bot; its handle names the supervisor and the job's process group, each with
its start time, and the status file the supervisor keeps next to the log.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from bot.core.errors import OperationFailed
from bot.core.settings import Settings
from bot.launchers import jobenv, procs
from bot.launchers.base import (
    END_STATES,
    Handle,
    Launcher,
    LaunchSpec,
    LaunchStatus,
    existing_worktree,
    run_locations,
)
from bot.launchers.sandbox import Prepared, Sandbox, sandbox_for
from bot.store.runs import DB_NAME, RunRecord

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the `bot` package

# Runs the user's setup with `set -e`, and stops with its exit code if it fails.
SETUP_TEMPLATE = """\
trap 'echo "fix-and-relaunch: launch.setup failed with exit code $?" >&2' EXIT
set -e
{setup}
__far_rc=$?
set +e
trap - EXIT
if [ "$__far_rc" -ne 0 ]; then
  echo "fix-and-relaunch: launch.setup failed with exit code $__far_rc" >&2
  exit "$__far_rc"
fi
{command}
"""


def compose_script(setup: str | None, command: str) -> str:
    if not setup or not setup.strip():
        return command
    return SETUP_TEMPLATE.format(setup=setup, command=command)


def _shell() -> str:
    return shutil.which("bash") or "/bin/sh"


def status_paths(log_path: Path) -> tuple[Path, Path]:
    """The status file and the cancel marker that live next to a run's log."""
    return log_path.with_name(log_path.name + ".status.json"), log_path.with_name(log_path.name + ".cancel")


# What the supervisor adds to the handle: its own process, the job's, and when the job started.
PROCESS_KEYS = ("supervisor_pid", "supervisor_start", "pid", "pgid", "start_time", "started_at")


def handle_from_status(status: Mapping[str, Any]) -> Handle | None:
    """A local run's handle, from its status file: what the launcher knew before the start (the
    supervisor copies it there as `handle`) and the processes the supervisor started. The one
    way the handle is built, for `launch`, `adopt` and the supervisor's own record of the end.
    None: no status file (the supervisor has not started the job yet)."""
    known = status.get("handle")
    if not isinstance(known, dict):
        return None
    return {**known, **{key: status.get(key) for key in PROCESS_KEYS}}


class LocalLauncher(Launcher):
    name = "local"
    installs_requirements = True  # the default backend runs the repo's code here, so it installs its requirements

    def __init__(
        self,
        settings: Settings,
        config: Mapping[str, Any] | None = None,
        *,
        base_env: Mapping[str, str] | None = None,
        grace_s: float = 10.0,
        start_timeout_s: float = 30.0,
    ):
        self.settings = settings
        self.config = config
        self.base_env = base_env  # None: the bot's own environment at launch time
        self.grace_s = grace_s
        self.start_timeout_s = start_timeout_s
        # Up to start_timeout_s for the supervisor to detach, as long again for the job to start.
        self.launch_timeout_s = max(60.0, 2 * start_timeout_s + 30.0)
        self._wrapped: dict[tuple[str, str], tuple[Prepared, dict[str, str]]] = {}  # by check_ready

    # -- launch -----------------------------------------------------------------------

    def launch(self, spec: LaunchSpec) -> Handle:
        existing_worktree(spec)
        log_path = Path(spec.log_path).resolve()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        status_path, cancel_path = status_paths(log_path)
        for stale in (status_path, cancel_path):
            stale.unlink(missing_ok=True)
        supervisor_spec = {
            "run_id": spec.run_id,
            "shell": _shell(),
            "script": self.script(spec),
            "cwd": str(Path(spec.worktree).resolve()),
            "log_path": str(log_path),
            "status_path": str(status_path),
            "cancel_path": str(cancel_path),
            "state_db": str(self._state_db()),
            "grace_s": self.grace_s,
            **self.supervisor_options(),
        }
        env = self._sandboxed(supervisor_spec, spec, self.environment(spec))
        # Copied into the status file with the pids: the handle can be rebuilt from it (`adopt`)
        # when the bot dies before storing what this returns.
        supervisor_spec["handle"] = {
            **run_locations(spec, env),
            "backend": self.name,
            "host": socket.gethostname(),
            "run_id": spec.run_id,
            "log_path": str(log_path),
            "status_path": str(status_path),
            "cancel_path": str(cancel_path),
        }
        self._start_supervisor(supervisor_spec, env, log_path)
        handle = handle_from_status(self._wait_started(status_path, log_path))
        if handle is None:
            raise OperationFailed(f"the run's status file {status_path} names no handle; see {log_path}")
        return handle

    def adopt(self, record: RunRecord) -> Handle | None:
        """The handle from the status file the run's supervisor writes once the job started."""
        if not record.log_path:
            return None
        status_path, _ = status_paths(Path(record.log_path).resolve())
        return handle_from_status(procs.read_json(status_path) or {})

    @cached_property
    def sandbox(self) -> Sandbox | None:
        """The sandbox the repo's code runs in here (bot/launchers/sandbox); None: unsandboxed."""
        return sandbox_for(self.config, self.settings)

    def check_ready(self, spec: LaunchSpec) -> None:
        """Decide the sandbox and wrap the job before the run is recorded: a refusal leaves no
        record, and `launch` then starts the supervisor at once."""
        if self.sandbox is not None:
            self._wrapped[(spec.run_id, self.script(spec))] = self._wrap(self.sandbox, spec)

    def _wrap(self, sandbox: Sandbox, spec: LaunchSpec) -> tuple[Prepared, dict[str, str]]:
        """The job's shell wrapped in the sandbox, and its clean environment."""
        argv = [_shell(), "-c", self.script(spec)]
        env = self.environment(spec)
        worktree, log_dir = Path(spec.worktree).resolve(), Path(spec.log_path).resolve().parent
        helper, target = self._install_paths(spec)
        prepared = sandbox.prepare(
            argv, worktree=worktree, env=env, name=spec.run_id, watch=[log_dir], read_only=helper, writable=target
        )
        return prepared, sandbox.environment(env, keep=spec.env)

    def _install_paths(self, spec: LaunchSpec) -> tuple[list[Path], list[Path]]:
        """What the install of the worktree's environment needs in the sandbox: its helper
        (read-only) and the environment's folder (made now, read-write)."""
        if self.install_lines(spec) is None:
            return [], []
        target = jobenv.env_dir(Path(self.settings.state_dir), Path(spec.worktree))
        target.mkdir(parents=True, exist_ok=True)
        return [jobenv.HELPER], [target]

    def _sandboxed(self, supervisor_spec: dict[str, Any], spec: LaunchSpec, env: dict[str, str]) -> dict[str, str]:
        """With a sandbox, the supervisor gets the wrapped command and the job's clean environment."""
        if self.sandbox is None:
            return env
        wrapped = self._wrapped.pop((spec.run_id, supervisor_spec["script"]), None)
        prepared, clean = wrapped if wrapped is not None else self._wrap(self.sandbox, spec)
        supervisor_spec["sandbox"] = prepared.to_json()
        return clean

    def script(self, spec: LaunchSpec) -> str:
        return (self.install_lines(spec) or "") + compose_script(spec.setup, spec.command)

    def install_lines(self, spec: LaunchSpec) -> str | None:
        """With no `launch.setup`, what the repo declares is installed into the worktree's own
        environment first (see jobenv.py); `launch.install: false` turns that off."""
        if not self.installs_requirements or (spec.setup and spec.setup.strip()):
            return None
        if not (self.config or {}).get("launch", {}).get("install", True):
            return None
        return jobenv.install_lines(Path(spec.worktree), spec.command, Path(self.settings.state_dir))

    def supervisor_options(self) -> dict[str, Any]:
        """Extra settings a subclass passes to the supervisor (see supervise.py)."""
        return {}

    def _state_db(self) -> Path:
        return Path(self.settings.state_dir).resolve() / DB_NAME

    def _start_supervisor(self, supervisor_spec: dict[str, Any], env: dict[str, str], log_path: Path) -> None:
        # -c with an explicit sys.path entry: the worktree (the cwd) may hold its own `bot`.
        code = (
            f"import sys; sys.path.insert(0, {str(PACKAGE_ROOT)!r}); "
            "from bot.launchers.supervise import main; sys.exit(main(sys.argv[1:]))"
        )
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-c", code, json.dumps(supervisor_spec)],
                cwd=supervisor_spec["cwd"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            returncode = proc.wait(timeout=self.start_timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise OperationFailed(f"the run supervisor did not start; see {log_path}") from None
        if returncode != 0:
            raise OperationFailed(f"the run supervisor failed (exit {returncode}); see {log_path}")

    def _wait_started(self, status_path: Path, log_path: Path) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def written() -> bool:
            found.update(procs.read_json(status_path) or {})
            return bool(found)

        if not procs.wait_until(written, self.start_timeout_s, interval=0.01):
            raise OperationFailed(f"the run did not start within {self.start_timeout_s:g}s; see {log_path}")
        return found

    # -- status -----------------------------------------------------------------------

    def status(self, handle: Handle) -> LaunchStatus:
        status_path = Path(handle["status_path"])
        if (recorded := _recorded_end(status_path)) is not None:
            return _from_status_file(recorded)
        if _other_host(handle):
            # Its pids mean nothing here: say so, rather than guess from an unrelated process.
            return LaunchStatus(
                "running",
                started_at=handle.get("started_at"),
                reason=f"runs on host {handle['host']}; its state cannot be checked from "
                f"{socket.gethostname()} until it writes its end to {status_path}",
            )
        if self._alive(handle):
            return LaunchStatus("running", started_at=handle.get("started_at"))
        if (recorded := _recorded_end(status_path)) is not None:  # it may just have ended
            return _from_status_file(recorded)
        return LaunchStatus("crashed", started_at=handle.get("started_at"), ended_at=time.time())

    @staticmethod
    def _alive(handle: Handle) -> bool:
        """The supervisor, or failing that the job itself (an orphan still counts as running)."""
        return procs.is_alive(handle.get("supervisor_pid"), handle.get("supervisor_start")) or procs.is_alive(
            handle.get("pid"), handle.get("start_time")
        )

    # -- cancel -----------------------------------------------------------------------

    def cancel(self, handle: Handle) -> None:
        if self.status(handle).ended:
            return
        if _other_host(handle):
            # Its process group id here belongs to some unrelated process: never signal it.
            raise OperationFailed(
                f"run {handle.get('run_id')} runs on host {handle['host']}, not on "
                f"{socket.gethostname()}; cancel it from that host"
            )
        Path(handle["cancel_path"]).touch()  # tells the supervisor the end is a kill
        stop_group(handle["pgid"], self.grace_s)
        self._await_end_record(handle)

    @staticmethod
    def _await_end_record(handle: Handle) -> None:
        """Give the supervisor a moment to record the kill; record it ourselves if it is gone."""
        status_path = Path(handle["status_path"])

        def settled() -> bool:
            return _recorded_end(status_path) is not None or not procs.is_alive(
                handle.get("supervisor_pid"), handle.get("supervisor_start")
            )

        procs.wait_until(settled, 5.0)
        if _recorded_end(status_path) is None:
            procs.write_json(
                status_path,
                {
                    **(procs.read_json(status_path) or {}),  # keeps the handle for `adopt`
                    "run_id": handle.get("run_id"),
                    "state": "killed",
                    "exit_code": None,
                    "started_at": handle.get("started_at"),
                    "ended_at": time.time(),
                },
            )


def _other_host(handle: Handle) -> bool:
    return handle.get("host") not in (None, socket.gethostname())


def stop_group(pgid: int, grace_s: float) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after the grace period."""
    procs.signal_group(pgid, signal.SIGTERM)
    if procs.wait_until(lambda: not procs.group_alive(pgid), grace_s):
        return
    procs.signal_group(pgid, signal.SIGKILL)
    procs.wait_until(lambda: not procs.group_alive(pgid), 5.0)


def _recorded_end(status_path: Path) -> dict[str, Any] | None:
    recorded = procs.read_json(status_path) or {}
    return recorded if recorded.get("state") in END_STATES else None


def _from_status_file(recorded: dict[str, Any]) -> LaunchStatus:
    return LaunchStatus(
        recorded["state"],
        exit_code=recorded.get("exit_code"),
        ended_at=recorded.get("ended_at"),
        started_at=recorded.get("started_at"),
        job_id=recorded.get("job_id"),
        reason=recorded.get("reason"),
    )
