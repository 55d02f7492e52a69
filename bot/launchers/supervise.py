"""The detached wrapper around a local run: `python -m bot.launchers.supervise '<json>'`.

It forks once so the run belongs to no bot process (a bot restart neither kills nor loses
it), starts the job's shell in its own process group with output appended to the log, and
when the job ends writes the exit code and end time to the status file, then to the state
store when it can. The status file is the record `LocalLauncher.status` trusts.

The JSON argument: run_id, shell, script, cwd, log_path, status_path, cancel_path, and
optionally handle (what the launcher knows of the run's handle before the start: kept in the
status file with the pids, so the handle can be rebuilt from it, see `local.handle_from_status`),
state_db, find_job_id (look for a job id the script printed, see command.py), cgroup_root
(where cgroup files are read, for tests), grace_s, and sandbox (a sandbox.Prepared: run its
argv instead of the shell, enforce its limits, and record the limit that ended the job as the
status's `reason`).

The kernel's OOM-kill count of the job's memory cgroup is read when the job starts and when it
ends: kills in between are the evidence that a job killed by SIGKILL ran out of memory (the
job itself prints nothing), recorded as `oom_kills` and as the end's `reason` (a sandbox's own
verdict, from the run's own cgroups, comes last and wins).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bot.launchers import procs
from bot.launchers.command import find_job_id, log_tail
from bot.launchers.local import handle_from_status
from bot.launchers.sandbox import Prepared, Stopper, Watch
from bot.launchers.sandbox.limits import WATCH_INTERVAL_S


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    if os.fork() > 0:
        os._exit(0)  # the launcher waits for this; the job lives on in the grandchild
    try:
        status = supervise(spec)
    except BaseException as exc:
        status = _end(spec, "crashed", None)
        print(f"fix-and-relaunch supervisor: {type(exc).__name__}: {exc}", file=sys.stderr)
    record_in_store(spec, status)
    return 0


def _own_process_group() -> dict[str, Any]:
    """Popen arguments that start the child in a process group of its own, so a stop signals
    the whole job. `process_group` is new in Python 3.11; before it, the child's setpgrp does the
    same (this process is a fresh single-threaded fork, where preexec_fn is safe)."""
    if sys.version_info >= (3, 11):
        return {"process_group": 0}
    return {"preexec_fn": os.setpgrp}


def supervise(spec: dict[str, Any]) -> dict[str, Any]:
    sandbox = Prepared.from_json(spec["sandbox"]) if spec.get("sandbox") else None
    argv = sandbox.argv if sandbox else [spec["shell"], "-c", spec["script"]]
    watch = sandbox.start() if sandbox else None
    try:
        return _run(spec, argv, sandbox, watch)
    finally:
        if sandbox:
            sandbox.finish()


def _run(spec: dict[str, Any], argv: list[str], sandbox: Prepared | None, watch: Watch | None) -> dict[str, Any]:
    cgroup_root = Path(spec.get("cgroup_root") or procs.CGROUP_ROOT)
    # Counted before the job starts: a job that is killed at once must not be counted in both.
    kills_before = procs.oom_kills(os.getpid(), cgroup_root=cgroup_root)  # the job's cgroup is ours
    with open(spec["log_path"], "ab", buffering=0) as log:
        if sandbox:
            log.write(f"{sandbox.note}\n".encode())
        child = subprocess.Popen(
            argv,
            cwd=spec["cwd"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            **_own_process_group(),
        )
    _forward_termination(spec, child.pid)
    status = {
        **_first_status(spec),
        "state": "running",
        "started_at": time.time(),
        "supervisor_pid": os.getpid(),
        "supervisor_start": procs.start_time(os.getpid()),
        "pid": child.pid,
        "pgid": child.pid,
        "start_time": procs.start_time(child.pid),
    }
    procs.write_json(spec["status_path"], status)
    code, breach = _wait(child, watch, float(spec.get("grace_s", 10.0)))
    status.update(_oom_evidence(kills_before, procs.oom_kills(os.getpid(), cgroup_root=cgroup_root)))
    if spec.get("find_job_id"):
        status["job_id"] = _job_id(Path(spec["log_path"]))
    if Path(spec["cancel_path"]).exists():
        return _end(spec, "killed", code, status)
    reason = sandbox.verdict(code, breach, log_tail(Path(spec["log_path"]))) if sandbox else None
    if reason:
        status["reason"] = reason
    # A job stopped for a limit failed, even when it caught the stop and exited 0.
    return _end(spec, "finished" if code == 0 and not breach else "failed", code, status)


def _wait(child: subprocess.Popen[bytes], watch: Watch | None, grace_s: float) -> tuple[int, str | None]:
    """The job's exit code, and the limit the watch stopped it for (when it did)."""
    if watch is None:
        return procs.exit_code(child.wait()), None
    stopper = Stopper(child.pid, grace_s)
    while True:
        try:
            return procs.exit_code(child.wait(timeout=WATCH_INTERVAL_S)), stopper.reason
        except subprocess.TimeoutExpired:
            stopper.tick(watch)


def _oom_evidence(before: int | None, after: int | None) -> dict[str, Any]:
    """The OOM kills of the job's cgroup while it ran (the supervisor shares its cgroup)."""
    if before is None or after is None or after <= before:
        return {}
    kills = after - before
    return {
        "oom_kills": kills,
        "reason": f"OOM: the kernel's OOM killer killed {kills} process(es) of the job's cgroup",
    }


def _job_id(log_path: Path) -> str | None:
    return find_job_id(log_tail(log_path))


def _forward_termination(spec: dict[str, Any], pgid: int) -> None:
    """Someone stopping the supervisor means to stop the job: pass it on, record a kill."""

    def handler(signum: int, _frame: object) -> None:
        Path(spec["cancel_path"]).touch()
        procs.signal_group(pgid, signal.SIGTERM)

    for signum in procs.TERM_SIGNALS:
        signal.signal(signum, handler)


def _first_status(spec: dict[str, Any]) -> dict[str, Any]:
    """What every status file holds: the run, and the handle the launcher knew before the start."""
    return {"run_id": spec["run_id"], **({"handle": spec["handle"]} if spec.get("handle") else {})}


def _end(spec: dict[str, Any], state: str, code: int | None, status: dict[str, Any] | None = None) -> dict[str, Any]:
    status = {
        **(status or procs.read_json(spec["status_path"]) or _first_status(spec)),
        "state": state,
        "exit_code": code,
        "ended_at": time.time(),
    }
    procs.write_json(spec["status_path"], status)
    return status


def record_in_store(spec: dict[str, Any], status: dict[str, Any]) -> None:
    """Best effort: the status file already holds the truth, the store is a convenience."""
    db = spec.get("state_db")
    if not db or not Path(db).exists():
        return
    from bot.store.runs import StateStore  # only now: keeps the supervisor's start-up light

    try:
        store = StateStore(Path(db))
        # The bot may have died before storing the handle: the ended run gets it all the same.
        if (handle := handle_from_status(status)) is not None:
            store.update_handle(spec["run_id"], **handle)
        if status.get("job_id"):
            store.update_handle(spec["run_id"], job_id=status["job_id"])
        if status.get("reason"):
            store.update_handle(spec["run_id"], end_reason=status["reason"])
        if status.get("oom_kills"):
            store.update_handle(spec["run_id"], oom_kills=status["oom_kills"])
        store.update_run(
            spec["run_id"],
            if_state=("queued", "running"),
            state=status["state"],
            exit_code=status["exit_code"],
            ended_at=status["ended_at"],
        )
    except Exception as exc:
        print(f"fix-and-relaunch supervisor: state store not updated: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
