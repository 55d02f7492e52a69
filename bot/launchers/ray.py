"""Ray Jobs backend: submit the branch's job to a Ray cluster's job server.

The worktree is the job's `runtime_env.working_dir`: Ray zips it (less `.git`, `wandb/`,
`.worktrees` and `__pycache__`), uploads it and runs the entrypoint in a copy on a node. The
submission id is the run id, so a handle of {address, submission_id} finds the job again, and
a job whose handle was never stored (the bot died while Ray took it) is adopted by that id.

Ray keeps the job's console output; `status` copies its last `LOG_LIMIT_BYTES` to the run's
`log_path` (at the end, and at most every `live_log_interval_s` while it runs), so the
diagnosis reads it like a local run's log.

Offline W&B (no API key): the job's `WANDB_DIR` is the worktree itself, so the offline run
folder lands in `<worktree>/wandb/` where the bot looks for it, not in Ray's copy. That needs
the worktree on storage the Ray nodes share (always true for a single-machine cluster).
A worktree's `.git` is a one-line pointer file, not a repository, and is kept for the same
reason: `git rev-parse` in the job (and wandb's own commit lookup) then works.

`ray` is an optional extra, imported only when a Ray run is launched or checked.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.core.errors import BadInput, OperationFailed, exception_line, first_line
from bot.core.files import write_atomic
from bot.core.settings import Settings
from bot.launchers import procs
from bot.launchers.base import (
    QUIET_WANDB_MODES,
    Handle,
    Launcher,
    LaunchSpec,
    LaunchStatus,
    existing_worktree,
    job_environment,
    keep_known,
    read_known,
    run_locations,
)
from bot.launchers.local import compose_script
from bot.store.runs import RunRecord

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
SCRIPT_VAR = "FIX_AND_RELAUNCH_SCRIPT"
INSTALL_HINT = "launch.backend ray needs: pip install 'fix-and-relaunch[ray]'"
DEFAULT_EXCLUDES = ("wandb/", ".worktrees/", "__pycache__/")
LOG_LIMIT_BYTES = 4 * 1024 * 1024
# W&B settings of the bot's own environment a job inherits; nothing else of it travels
# (the bot's environment holds GitHub and Anthropic secrets).
PASSED_ENV = ("WANDB_MODE", "WANDB_BASE_URL", "WANDB_ENTITY", "WANDB_PROJECT", "WANDB_SILENT")
# Ray's word for a failure of the cluster rather than of the job's own code.
INFRA_ERRORS = (
    "JOB_SUPERVISOR_ACTOR_DIED",
    "JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE",
    "JOB_SUPERVISOR_ACTOR_START_TIMEOUT",
    "JOB_SUPERVISOR_ACTOR_START_FAILURE",
    "JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE",
)
_STATES = {"PENDING": "queued", "RUNNING": "running", "SUCCEEDED": "finished", "STOPPED": "killed"}


def job_submission() -> Any:
    """The `ray.job_submission` module, or BadInput saying how to install it."""
    try:
        import ray.job_submission as jobs
    except ImportError:
        raise BadInput(INSTALL_HINT) from None
    return jobs


class RayLauncher(Launcher):
    name = "ray"

    def __init__(
        self,
        settings: Settings,
        config: Mapping[str, Any] | None = None,
        *,
        base_env: Mapping[str, str] | None = None,
        stop_timeout_s: float = 30.0,
        live_log_interval_s: float = 10.0,
    ):
        self.settings = settings
        self.options: dict[str, Any] = dict(((config or {}).get("launch") or {}).get("ray") or {})
        self.base_env = base_env  # None: the bot's own environment at launch time
        self.stop_timeout_s = stop_timeout_s
        self.live_log_interval_s = live_log_interval_s
        self.launch_timeout_s = 900.0  # submit_job zips and uploads the worktree first
        self._clients: dict[str, JobSubmissionClient] = {}

    # -- launch -----------------------------------------------------------------------

    def launch(self, spec: LaunchSpec) -> Handle:
        worktree = existing_worktree(spec)
        address = str(self.options.get("address") or DEFAULT_ADDRESS)
        client = self._client(address)
        log_path = Path(spec.log_path).resolve()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.unlink(missing_ok=True)
        runtime_env = self.runtime_env(spec, worktree)
        known = {
            **run_locations(spec, runtime_env["env_vars"]),
            "backend": self.name,
            "address": address,
            "submission_id": spec.run_id,
            "run_id": spec.run_id,
            "log_path": str(log_path),
        }
        keep_known(log_path, known)  # the submission id is the run's: enough to adopt the job
        try:
            client.submit_job(
                entrypoint=self.entrypoint(spec),
                submission_id=spec.run_id,
                runtime_env=runtime_env,
                metadata={"fix_and_relaunch_branch": spec.branch[:200], "fix_and_relaunch_commit": spec.commit},
                # None (not set in the repo's config) is Ray's own default: no reservation.
                entrypoint_num_cpus=self.options.get("num_cpus"),
                entrypoint_num_gpus=self.options.get("num_gpus"),
            )
        except BadInput:
            raise
        except Exception as exc:
            raise OperationFailed(f"Ray at {address} did not take the job: {exception_line(exc)}") from None
        return {**known, "started_at": time.time()}

    def adopt(self, record: RunRecord) -> Handle | None:
        """The job submitted under the run's id, when the cluster knows it. None while the cluster
        does not answer (asked again later) or has no such job: not submitted yet."""
        known = read_known(record)
        if known is None:
            return None
        try:
            info = self._client(known["address"]).get_job_info(known["submission_id"])
        except BadInput:
            raise
        except Exception:
            return None
        return {**known, "started_at": _seconds(getattr(info, "start_time", None)) or time.time()}

    def entrypoint(self, spec: LaunchSpec) -> str:
        if compose_script(spec.setup, spec.command) == spec.command:
            return spec.command
        # Setup and command run as the local backend runs them (stop at a failing setup line).
        # The script travels in the environment: Ray echoes the entrypoint into the job's log,
        # and the template's own "setup failed" text must not reach the diagnosis unless it did.
        return f'sh -c "${SCRIPT_VAR}"'

    def runtime_env(self, spec: LaunchSpec, worktree: Path) -> dict[str, Any]:
        extra = dict(self.options.get("runtime_env") or {})
        env_vars = {**(extra.pop("env_vars", None) or {}), **self.environment(spec)}
        excludes = [*excludes_for(worktree), *(extra.pop("excludes", None) or [])]
        return {**extra, "working_dir": str(worktree), "excludes": excludes, "env_vars": env_vars}

    def environment(self, spec: LaunchSpec) -> dict[str, str]:
        base = self.inherited_env()
        env = job_environment(self.settings, spec, {key: base[key] for key in PASSED_ENV if base.get(key)})
        if env.get("WANDB_MODE") in QUIET_WANDB_MODES:
            # The bot reads offline runs from the worktree, not from Ray's copy of it.
            env.setdefault("WANDB_DIR", str(Path(spec.worktree).resolve()))
        script = compose_script(spec.setup, spec.command)
        if script != spec.command:
            env[SCRIPT_VAR] = script
        env["WANDB_GIT_COMMIT"] = spec.commit  # for nodes that cannot follow the .git pointer
        return env

    # -- status -----------------------------------------------------------------------

    def status(self, handle: Handle) -> LaunchStatus:
        try:
            client = self._client(handle["address"])
            info = client.get_job_info(handle["submission_id"])
        except BadInput:
            raise
        except Exception as exc:
            return self._unreadable(handle, exc)
        status = from_job_info(info)
        self._save_logs(client, handle, final=status.ended)
        return status

    def statuses(self, handles: list[Handle]) -> list[LaunchStatus]:
        """Every job's status from one job list per Ray cluster, not one request per job."""
        listed: dict[str, dict[str, Any] | Exception] = {}
        for address in {h["address"] for h in handles}:
            try:
                client = self._client(address)
                listed[address] = {job.submission_id: job for job in client.list_jobs() if job.submission_id}
            except BadInput:
                raise
            except Exception as exc:
                listed[address] = exc
        result = []
        for handle in handles:
            jobs = listed[handle["address"]]
            info = jobs.get(handle["submission_id"]) if isinstance(jobs, dict) else None
            if info is None:  # not listed (or no list): ask about this one, as `status` does
                result.append(self.status(handle))
                continue
            status = from_job_info(info)
            self._save_logs(self._client(handle["address"]), handle, final=status.ended)
            result.append(status)
        return result

    def _unreadable(self, handle: Handle, exc: Exception) -> LaunchStatus:
        """A cluster that answers but has no such job lost it; one that does not answer
        cannot say, and the run counts as running until it can."""
        if "does not exist" in str(exc):
            return LaunchStatus(
                "crashed",
                started_at=handle.get("started_at"),
                ended_at=time.time(),
                reason=f"the Ray cluster at {handle['address']} no longer knows job "
                f"{handle['submission_id']} (node failure or head restart)",
            )
        return LaunchStatus("running", started_at=handle.get("started_at"))

    def _save_logs(self, client: JobSubmissionClient, handle: Handle, *, final: bool) -> None:
        """Copy the job's console output to the run's log; while it runs, not too often."""
        log_path = Path(handle["log_path"])
        if not final and _age(log_path) < self.live_log_interval_s:
            return
        try:
            text = client.get_job_logs(handle["submission_id"])
        except Exception:
            return
        write_tail(log_path, text, LOG_LIMIT_BYTES)

    # -- cancel -----------------------------------------------------------------------

    def cancel(self, handle: Handle) -> None:
        if self.status(handle).ended:
            return
        client = self._client(handle["address"])
        try:
            client.stop_job(handle["submission_id"])
        except Exception as exc:
            raise OperationFailed(
                f"Ray at {handle['address']} did not stop job {handle['submission_id']}: {exception_line(exc)}"
            ) from None
        procs.wait_until(lambda: self.status(handle).ended, self.stop_timeout_s, interval=0.2)

    # -- the client -------------------------------------------------------------------

    def _client(self, address: str) -> JobSubmissionClient:
        if address not in self._clients:
            jobs = job_submission()
            try:
                self._clients[address] = jobs.JobSubmissionClient(address)
            except Exception as exc:
                raise OperationFailed(f"no Ray job server answers at {address}: {exception_line(exc)}") from None
        return self._clients[address]


def excludes_for(worktree: Path) -> list[str]:
    """What never goes into the upload. A `.git` folder (a full clone) is large and of no use
    to the job; a worktree's `.git` file is a one-line pointer and stays (see the module doc)."""
    git = Path(worktree) / ".git"
    return [*DEFAULT_EXCLUDES, *([] if git.is_file() else [".git"])]


def from_job_info(info: Any) -> LaunchStatus:
    """Ray's JobDetails (or JobInfo) as a LaunchStatus."""
    status = str(getattr(info.status, "value", info.status))
    started_at = _seconds(getattr(info, "start_time", None))
    ended_at = _seconds(getattr(info, "end_time", None))
    if status in _STATES:
        state = _STATES[status]
        exit_code = getattr(info, "driver_exit_code", None) if state == "finished" else None
        return LaunchStatus(state, exit_code=exit_code, started_at=started_at, ended_at=ended_at)
    error_type = str(getattr(info, "error_type", None) or "")
    message = first_line(getattr(info, "message", None) or "")
    exit_code = getattr(info, "driver_exit_code", None)
    if error_type in INFRA_ERRORS:
        return LaunchStatus(
            "crashed",
            exit_code=exit_code,
            started_at=started_at,
            ended_at=ended_at,
            reason=f"{error_type}: infrastructure failure (node failure or lost Ray actor): {message}",
        )
    if error_type == "JOB_ENTRYPOINT_COMMAND_ERROR" or exit_code is not None:
        return LaunchStatus("failed", exit_code=exit_code, started_at=started_at, ended_at=ended_at)
    reason = f"{error_type or status}: {message}"
    return LaunchStatus("failed", started_at=started_at, ended_at=ended_at, reason=reason)


def write_tail(path: Path, text: str, limit: int) -> None:
    """Write the last `limit` bytes of `text` (whole lines) to `path`, atomically."""
    data = text.encode("utf-8", errors="replace")
    if len(data) > limit:
        data = data[-limit:]
        data = data[data.find(b"\n") + 1 :]  # drop the line the cut went through
    write_atomic(path, data)


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return float("inf")


def _seconds(millis: int | None) -> float | None:
    return millis / 1000 if millis else None
