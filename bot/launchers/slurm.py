"""Slurm: submit the branch's job with `sbatch`, follow it with `scontrol` (and `sacct`).

The batch script holds the repo config's `launch.slurm` options as `#SBATCH` lines, then
`launch.setup` and `launch.command`, run in the branch's worktree. The bot's paths (work
directory, log) go to sbatch as arguments, never through a shell or an `#SBATCH` line. In a
real cluster the worktree and the bot's state folder (the log) must be on shared storage.

    launch:
      backend: slurm
      command: python train.py
      slurm: {partition: gpu, time: "4:00:00", gres: "gpu:1", cpus: 8, mem: 32G,
              qos: normal, account: my-team, requeue: false, extra: ["--exclusive"]}

The handle holds the job id, so `status` and `cancel` work after a bot restart. A bot that
died between sbatch's answer and storing the handle left a job named `far-<run id>` and the
handle's other parts beside the log: `adopt` finds the job by that name. Every Slurm
command runs with the bot's environment, so SLURM_CONF and the like reach it; the job gets
that environment too (`--export=ALL`) with the run's own variables added, less the bot's own
secrets (see `bot.launchers.base.without_bot_secrets`; sbatch itself runs without them).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.core.errors import BadInput, OperationFailed
from bot.core.settings import Settings
from bot.launchers import procs
from bot.launchers.base import (
    Handle,
    Launcher,
    LaunchSpec,
    LaunchStatus,
    existing_worktree,
    keep_known,
    read_known,
    run_locations,
)
from bot.launchers.local import compose_script
from bot.store.runs import RunRecord

# Values that go on an `#SBATCH` line: sbatch splits them at spaces and reads quotes itself.
SAFE_VALUE = re.compile(r"[\w.:,=+/@%*-]+")
STRING_OPTIONS = {"partition": "--partition", "gres": "--gres", "qos": "--qos", "account": "--account"}
STRING_OR_INT_OPTIONS = {"time": "--time", "mem": "--mem"}
INT_OPTIONS = {"cpus": "--cpus-per-task"}
KNOWN_OPTIONS = (*STRING_OPTIONS, *STRING_OR_INT_OPTIONS, *INT_OPTIONS, "requeue", "extra")

# Slurm job states → run states. Anything unlisted is treated as an end Slurm did not explain.
QUEUED = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}
RUNNING = {
    "RUNNING",
    "COMPLETING",
    "SUSPENDED",
    "STOPPED",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "POWER_UP_NODE",
    "UPDATE_DB",
}
INFRA_ENDS = {"PREEMPTED", "NODE_FAIL", "BOOT_FAIL"}  # not the job's fault: retry as is
FAILED_WITH_REASON = {"OUT_OF_MEMORY", "TIMEOUT", "DEADLINE"}
GONE = "Invalid job id"  # scontrol, once MinJobAge has passed


class SlurmLauncher(Launcher):
    name = "slurm"

    def __init__(
        self,
        settings: Settings,
        config: Mapping[str, Any] | None = None,
        *,
        base_env: Mapping[str, str] | None = None,
        command_timeout_s: float = 30.0,
        cancel_timeout_s: float = 15.0,
    ):
        self.settings = settings
        self.config = config
        self.base_env = base_env  # None: the bot's own environment when a command runs
        self.command_timeout_s = command_timeout_s
        self.cancel_timeout_s = cancel_timeout_s
        self.launch_timeout_s = max(60.0, 2 * command_timeout_s + 30.0)  # sbatch, then scontrol

    # -- launch -----------------------------------------------------------------------

    def launch(self, spec: LaunchSpec) -> Handle:
        worktree = existing_worktree(spec)
        options = slurm_options((self.config or {}).get("launch", {}).get("slurm"))
        log_path = Path(spec.log_path).resolve()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        script_path = log_path.with_suffix(".sbatch")
        script_path.write_text(batch_script(spec, worktree, options))
        argv = [
            "sbatch",
            "--parsable",
            f"--job-name={job_name(spec.run_id)}",
            f"--chdir={worktree}",
            f"--output={output_pattern(log_path)}",
            "--open-mode=append",
            "--export=ALL",
            str(script_path),
        ]
        env = self.environment(spec)
        known = {
            **run_locations(spec, env),
            "backend": self.name,
            "log_path": str(log_path),
            "script_path": str(script_path),
            "run_id": spec.run_id,
        }
        keep_known(log_path, known)  # with the job's name, enough to adopt it
        out = self._run(argv, env=env, what="sbatch")
        job_id, _, cluster = out.strip().splitlines()[-1].partition(";")
        if not job_id.strip().isdigit():
            raise OperationFailed(f"sbatch printed no job id: {out.strip()!r}")
        return _handle(known, job_id.strip(), cluster or self._cluster_name(), bool(cluster), time.time())

    def adopt(self, record: RunRecord) -> Handle | None:
        """The job named after the run, as `scontrol` lists it. A job sent to another cluster
        (`--clusters` in launch.slurm.extra) is not found this way: it is not adopted."""
        known = read_known(record)
        if known is None:
            return None  # sbatch has not been called
        fields = self._job_named(job_name(record.id))
        if fields is None:
            return None
        submitted_at = parse_time(fields.get("SubmitTime", "")) or time.time()
        return _handle(known, fields["JobId"], self._cluster_name(), False, submitted_at)

    def _job_named(self, name: str) -> dict[str, str] | None:
        """The newest job of that name the controller holds; None when none (or no answer)."""
        try:
            proc = self._call(["scontrol", "show", "job", "-o"])
        except OperationFailed:  # no scontrol, or no answer: cannot tell yet
            return None
        if proc.returncode != 0:
            return None
        fields = (parse_scontrol(line) for line in proc.stdout.splitlines() if line.strip())
        named = [f for f in fields if f.get("JobName") == name and f.get("JobId", "").isdigit()]
        return max(named, key=lambda f: int(f["JobId"]), default=None)

    def _cluster_name(self) -> str | None:
        try:
            out = self._run(["scontrol", "show", "config"], what="scontrol")
        except OperationFailed:
            return None
        found = re.search(r"^ClusterName\s*=\s*(\S+)", out, re.M)
        return found.group(1) if found else None

    # -- status -----------------------------------------------------------------------

    def status(self, handle: Handle) -> LaunchStatus:
        job_id = str(handle["job_id"])
        try:
            fields = self._scontrol_job(handle) or self._sacct_job(handle)
        except OperationFailed:
            # The controller is unreachable: say nothing new rather than call the job lost.
            return LaunchStatus("running", started_at=handle.get("started_at"), job_id=job_id)
        if fields is None:
            return LaunchStatus("crashed", job_id=job_id, ended_at=time.time(), reason="job no longer known to Slurm")
        return status_from_fields(fields, job_id)

    def statuses(self, handles: list[Handle]) -> list[LaunchStatus]:
        """Every job's status from one `scontrol show job -o` per cluster (all its jobs), then one
        `sacct` for those scontrol no longer holds: a poll of many waits costs two calls, not 2n."""
        found: dict[tuple[str, ...], dict[str, dict[str, str]] | None] = {}
        for cluster in {tuple(_cluster_args(h)) for h in handles}:
            ids = [str(h["job_id"]) for h in handles if tuple(_cluster_args(h)) == cluster]
            try:
                found[cluster] = self._jobs_fields(list(cluster), ids)
            except OperationFailed:
                found[cluster] = None
        result = []
        for handle in handles:
            job_id, known = str(handle["job_id"]), found[tuple(_cluster_args(handle))]
            if known is None:  # the controller is unreachable: say nothing new
                result.append(LaunchStatus("running", started_at=handle.get("started_at"), job_id=job_id))
            elif job_id not in known:
                result.append(
                    LaunchStatus("crashed", job_id=job_id, ended_at=time.time(), reason="job no longer known to Slurm")
                )
            else:
                result.append(status_from_fields(known[job_id], job_id))
        return result

    def _jobs_fields(self, cluster: list[str], ids: list[str]) -> dict[str, dict[str, str]] | None:
        """The fields of each of `ids` Slurm knows, by job id; None when the controller does not answer."""
        proc = self._call(["scontrol", *cluster, "show", "job", "-o"])
        if proc.returncode != 0 and "No jobs in the system" not in proc.stdout + proc.stderr:
            return None
        fields = (parse_scontrol(line) for line in proc.stdout.splitlines() if line.strip())
        known = {f["JobId"]: f for f in fields if f.get("JobId") in ids}
        missing = [i for i in ids if i not in known]
        if missing and shutil.which("sacct") is not None:
            known.update(self._sacct_jobs(cluster, missing))
        return known

    def _sacct_jobs(self, cluster: list[str], ids: list[str]) -> dict[str, dict[str, str]]:
        argv = ["sacct", *cluster, "-j", ",".join(ids), "-X", "-n", "-P", "-o", "JobID,State,ExitCode,Start,End"]
        proc = self._call(argv)
        if proc.returncode != 0:
            return {}
        known: dict[str, dict[str, str]] = {}
        for line in proc.stdout.splitlines():
            job_id, state, exit_code, start, end = (line.split("|") + ["", "", "", "", ""])[:5]
            if job_id in ids:
                known[job_id] = {"JobState": state, "ExitCode": exit_code, "StartTime": start, "EndTime": end}
        return known

    def _scontrol_job(self, handle: Handle) -> dict[str, str] | None:
        argv = ["scontrol", *_cluster_args(handle), "show", "job", "-o", str(handle["job_id"])]
        proc = self._call(argv)
        if proc.returncode != 0:
            if GONE in proc.stderr:
                return None
            raise OperationFailed(f"scontrol failed: {proc.stderr.strip()}")
        return parse_scontrol(proc.stdout)

    def _sacct_job(self, handle: Handle) -> dict[str, str] | None:
        """Accounting outlives scontrol's memory of a job; many clusters (and the tests) have none."""
        if shutil.which("sacct") is None:
            return None
        argv = [
            "sacct",
            *_cluster_args(handle),
            "-j",
            str(handle["job_id"]),
            "-X",
            "-n",
            "-P",
            "-o",
            "State,ExitCode,Start,End",
        ]
        proc = self._call(argv)
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        if proc.returncode != 0 or not lines:
            return None
        state, exit_code, start, end = (lines[-1].split("|") + ["", "", "", ""])[:4]
        return {"JobState": state, "ExitCode": exit_code, "StartTime": start, "EndTime": end}

    # -- cancel -----------------------------------------------------------------------

    def cancel(self, handle: Handle) -> None:
        if self.status(handle).ended:
            return
        proc = self._call(["scancel", *_cluster_args(handle), str(handle["job_id"])])
        if proc.returncode != 0 and "already completing or completed" not in proc.stderr:
            raise OperationFailed(f"scancel {handle['job_id']} failed: {proc.stderr.strip()}")
        procs.wait_until(lambda: self.status(handle).ended, self.cancel_timeout_s, interval=0.1)

    # -- running Slurm's commands -----------------------------------------------------

    def _call(self, argv: list[str], env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
        env = dict(env if env is not None else self.inherited_env())
        try:
            return subprocess.run(
                argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=self.command_timeout_s
            )
        except FileNotFoundError:
            raise OperationFailed(f"{argv[0]} not found: is the Slurm client installed and on PATH?") from None
        except subprocess.TimeoutExpired:
            raise OperationFailed(f"{argv[0]} did not answer within {self.command_timeout_s:g}s") from None

    def _run(self, argv: list[str], *, what: str, env: Mapping[str, str] | None = None) -> str:
        proc = self._call(argv, env)
        if proc.returncode != 0:
            raise OperationFailed(f"{what} failed (exit {proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout


def job_name(run_id: str) -> str:
    """The Slurm job name of a run: how a job whose id the bot never stored is found again."""
    return f"far-{run_id}"


def _handle(known: Handle, job_id: str, cluster: str | None, via_clusters: bool, submitted_at: float) -> Handle:
    """A submitted job's handle: what the launcher knew before sbatch, and the job Slurm made."""
    return {**known, "job_id": job_id, "cluster": cluster, "via_clusters": via_clusters, "submitted_at": submitted_at}


def _cluster_args(handle: Handle) -> list[str]:
    return [f"--clusters={handle['cluster']}"] if handle.get("via_clusters") and handle.get("cluster") else []


# -- the batch script -------------------------------------------------------------------


def slurm_options(raw: Any) -> list[str]:
    """`launch.slurm` as sbatch options, checked; a bad key or value → BadInput naming it."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise BadInput(f"launch.slurm must be a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(KNOWN_OPTIONS))
    if unknown:
        raise BadInput(f"launch.slurm.{unknown[0]} is not a known option (known: {', '.join(KNOWN_OPTIONS)})")
    options = [f"{flag}={_string(raw[key], key)}" for key, flag in STRING_OPTIONS.items() if key in raw]
    options += [f"{flag}={_string_or_int(raw[key], key)}" for key, flag in STRING_OR_INT_OPTIONS.items() if key in raw]
    options += [f"{flag}={_positive_int(raw[key], key)}" for key, flag in INT_OPTIONS.items() if key in raw]
    options.append("--requeue" if _bool(raw.get("requeue", False), "requeue") else "--no-requeue")
    options += [_extra_line(line, i) for i, line in enumerate(_list(raw.get("extra", []), "extra"))]
    return options


def _string(value: Any, key: str) -> str:
    if not isinstance(value, str) or not SAFE_VALUE.fullmatch(value):
        raise BadInput(
            f"launch.slurm.{key} must be a string of letters, digits and .:,=+/@%*-_ (no spaces), got {value!r}"
        )
    return value


def _string_or_int(value: Any, key: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(_positive_int(value, key))
    return _string(value, key)


def _positive_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadInput(f"launch.slurm.{key} must be a positive integer, got {value!r}")
    return value


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise BadInput(f"launch.slurm.{key} must be true or false, got {value!r}")
    return value


def _list(value: Any, key: str) -> list:
    if not isinstance(value, list):
        raise BadInput(f"launch.slurm.{key} must be a list of sbatch options, got {value!r}")
    return value


def _extra_line(line: Any, index: int) -> str:
    """One `launch.slurm.extra` entry: `--exclusive` or `#SBATCH --exclusive`, one line only."""
    key = f"launch.slurm.extra[{index}]"
    if not isinstance(line, str):
        raise BadInput(f"{key} must be a string, got {line!r}")
    option = line.strip().removeprefix("#SBATCH").strip()
    if not option.startswith("-") or any(c in option for c in "\n\r\0"):
        raise BadInput(f"{key} must be one sbatch option starting with '-', got {line!r}")
    return option


def output_pattern(path: Path) -> str:
    """`path` as sbatch's --output wants it: `%` starts a replacement (%j: job id) unless
    doubled, and a backslash anywhere turns replacements off."""
    text = str(path)
    return text if "\\" in text else text.replace("%", "%%")


def batch_script(spec: LaunchSpec, worktree: Path, options: list[str]) -> str:
    """The script sbatch runs: options, then a `cd` that fails loudly (Slurm falls back to
    /tmp when --chdir fails), then the repo's setup and command."""
    header = "".join(f"#SBATCH {option}\n" for option in options)
    return (
        f"#!/bin/bash\n{header}"
        f"# fix-and-relaunch run {shlex.quote(spec.run_id)}\n"
        f"cd -- {shlex.quote(str(worktree))} || exit 1\n"
        f"{compose_script(spec.setup, spec.command)}\n"
    )


# -- reading Slurm's answers ------------------------------------------------------------


def parse_scontrol(text: str) -> dict[str, str]:
    """The fields of `scontrol show job -o`; the first of each name wins (JobState comes
    before any path that could hold ' JobState=')."""
    fields: dict[str, str] = {}
    for match in re.finditer(r"(?:^|\s)([A-Za-z][\w/:]*)=(\S*)", text):
        fields.setdefault(match.group(1), match.group(2))
    return fields


def status_from_fields(fields: Mapping[str, str], job_id: str) -> LaunchStatus:
    slurm_state = fields.get("JobState", "").split(" ")[0].rstrip("+").upper()
    exit_code = parse_exit_code(fields.get("ExitCode", ""))
    restarts = int(fields["Restarts"]) if fields.get("Restarts", "").isdigit() else 0
    state, reason = map_state(slurm_state, restarts)
    # A pending job's StartTime is only Slurm's guess.
    started_at = parse_time(fields.get("StartTime", "")) if state != "queued" else None
    ended_at = parse_time(fields.get("EndTime", "")) if state not in ("queued", "running") else None
    if state in ("queued", "running"):
        return LaunchStatus(state, started_at=started_at, job_id=job_id)
    return LaunchStatus(
        state,
        exit_code=exit_code,
        ended_at=ended_at or time.time(),
        started_at=started_at,
        job_id=job_id,
        reason=reason,
    )


def map_state(slurm_state: str, restarts: int = 0) -> tuple[str, str | None]:
    """A Slurm job state as (run state, reason); the reason is Slurm's word when it explains
    the end better than an exit code does."""
    if slurm_state in QUEUED:
        return "queued", None
    if slurm_state in RUNNING:
        return "running", None
    if slurm_state == "COMPLETED":
        return "finished", None
    if slurm_state == "FAILED":
        return "failed", None
    if slurm_state in ("CANCELLED", "REVOKED"):
        return "killed", None
    if slurm_state in INFRA_ENDS or (slurm_state == "TIMEOUT" and restarts > 0):
        return "crashed", slurm_state  # a requeued job that then ran out of time was cut short
    if slurm_state in FAILED_WITH_REASON:
        return "failed", slurm_state
    return "crashed", slurm_state or "UNKNOWN"


def parse_exit_code(text: str) -> int | None:
    """Slurm's `code:signal`; a job killed by a signal reports 128 + signal, like a shell."""
    code, _, signal = text.partition(":")
    if not code.isdigit():
        return None
    if int(code) == 0 and signal.isdigit() and int(signal) > 0:
        return 128 + int(signal)
    return int(code)


def parse_time(text: str) -> float | None:
    """An scontrol/sacct time (local, ISO without zone) as unix seconds; Unknown/None → None."""
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
