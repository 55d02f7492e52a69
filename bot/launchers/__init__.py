"""Launch backends, and the runs they start as the state store keeps them.

`get_launcher(backend, settings, config)` picks a backend; `start_run` launches a branch and
records it (a launch the backend refuses is an error, `LaunchRefused`, and leaves no record);
`refresh_run` / `refresh_runs` (many at once) / `active_runs` bring recorded runs up to date
from their backend, adopting a started job whose handle the bot never stored
(`Launcher.adopt`); `cancel_run` stops one. A new backend registers itself with `register`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bot.core.errors import BadInput, OperationFailed
from bot.core.settings import Settings
from bot.launchers.base import END_STATES, Handle, Launcher, LaunchSpec, LaunchStatus
from bot.launchers.command import CommandLauncher
from bot.launchers.local import LocalLauncher
from bot.runs.model import ACTIVE_STATES
from bot.store.runs import RunRecord, StateStore, new_run_id

log = logging.getLogger(__name__)

__all__ = [
    "ACTIVE_STATES",
    "END_STATES",
    "Handle",
    "Launcher",
    "LaunchSpec",
    "LaunchStatus",
    "LaunchRefused",
    "get_launcher",
    "register",
    "run_dir",
    "start_run",
    "refresh_run",
    "refresh_runs",
    "active_runs",
    "cancel_run",
]

LauncherFactory = Callable[[Settings, Mapping[str, Any] | None], Launcher]


class LaunchRefused(OperationFailed):
    """The backend did not start the run (a scheduler missing or refusing the job). Exit 2, as
    for bad input; still an OperationFailed, so a relaunch the loop makes gives up on it as before."""

    exit_code = 2


def _ray(settings: Settings, config: Mapping[str, Any] | None) -> Launcher:
    from bot.launchers.ray import RayLauncher  # lazily: importing the registry never imports ray

    return RayLauncher(settings, config)


def _wandb_launch(settings: Settings, config: Mapping[str, Any] | None) -> Launcher:
    from bot.launchers.wandb_launch import WandbLaunchLauncher

    return WandbLaunchLauncher(settings, config)


def _slurm(settings: Settings, config: Mapping[str, Any] | None) -> Launcher:
    from bot.launchers.slurm import SlurmLauncher

    return SlurmLauncher(settings, config)


_FACTORIES: dict[str, LauncherFactory] = {
    "local": LocalLauncher,
    "command": CommandLauncher,
    "ray": _ray,
    "wandb-launch": _wandb_launch,
    "slurm": _slurm,
}


def register(backend: str, factory: LauncherFactory) -> None:
    _FACTORIES[backend] = factory


def get_launcher(backend: str, settings: Settings, config: Mapping[str, Any] | None = None) -> Launcher:
    """The launcher for `backend`. `config` is the repo config; status and cancel need none."""
    factory = _FACTORIES.get(backend)
    if factory is None:
        available = ", ".join(sorted(_FACTORIES))
        raise BadInput(f"launch.backend {backend!r} is not available (available: {available})")
    return factory(settings, config)


def run_dir(settings: Settings, run_id: str) -> Path:
    """Where a run's log and status file live."""
    return Path(settings.state_dir) / "runs" / run_id


def start_run(
    store: StateStore,
    settings: Settings,
    config: Mapping[str, Any],
    *,
    repo: str | Path,
    branch: str,
    commit: str,
    worktree: Path,
    env: Mapping[str, str] | None = None,
    run_id: str | None = None,
) -> RunRecord:
    """Launch `branch` with the repo config's backend, setup and command; record the run."""
    launch = config["launch"]
    launcher = get_launcher(launch["backend"], settings, config)
    run_id = run_id or new_run_id()
    log_path = run_dir(settings, run_id) / "output.log"
    spec = LaunchSpec(
        repo=str(repo),
        branch=branch,
        commit=commit,
        worktree=Path(worktree),
        command=launch["command"],
        setup=launch.get("setup"),
        env=dict(env or {}),
        log_path=log_path,
        run_id=run_id,
    )
    launcher.check_ready(spec)
    store.add_run(
        id=run_id,
        repo=str(repo),
        branch=branch,
        commit=commit,
        backend=launcher.name,
        log_path=str(log_path),
        unless_active=True,
    )
    try:
        handle = launcher.launch(spec)
    except Exception as exc:
        # The backend refused (bad options, no scheduler, no key): nothing started that the bot
        # could follow, so there is no run to record, diagnose or fix; only an error to report.
        store.delete_run(run_id)
        if isinstance(exc, BadInput):
            raise
        raise LaunchRefused(f"the {launcher.name} backend refused the launch: {exc}") from exc
    except BaseException:  # interrupted mid-launch (Ctrl-C, shutdown): the job may have started
        _adopt_if_started(store, settings, run_id)
        raise
    return _record_started(store, run_id, handle)


def _adopt_if_started(store: StateStore, settings: Settings, run_id: str) -> None:
    """After an interrupted launch, `refresh_run` at once: a job that started is recorded running;
    otherwise the run stays queued without a handle, as a bot killed there leaves it, to be adopted
    later or, after the backend's launch timeout, marked lost. Never failed: a run that is in fact
    running would be diagnosed, and relaunched beside itself."""
    try:
        if (record := store.get_run(run_id)) is not None:
            refresh_run(store, settings, record)
    except Exception as exc:  # the interruption is what the caller must see; the next look tries again
        log.warning("run %s: could not tell whether its interrupted launch started: %s", run_id, exc)


def _record_started(store: StateStore, run_id: str, handle: Handle) -> RunRecord:
    """Store a started run's handle, and move it from queued to running."""
    # A quick run's supervisor may already have recorded its end (and a job id): merge, keep.
    store.update_handle(run_id, **handle)
    store.update_run(run_id, started_at=handle.get("started_at") or time.time())
    return store.update_run(run_id, if_state="queued", state="running")


def refresh_run(store: StateStore, settings: Settings, record: RunRecord) -> RunRecord:
    """Ask the run's backend where it stands and record the answer.

    A run recorded without a handle (the bot died between `add_run` and `update_handle`, or is
    still inside `launch`) is adopted from what its backend left behind (`Launcher.adopt`)
    when the job started (harmless while the launching bot is still inside `launch`: both store
    the same handle). One still without a handle after its backend's launch can take
    lost its launch: it is marked crashed, so it no longer blocks the branch's next launch.
    """
    if record.state not in ACTIVE_STATES:
        return record
    if record.handle:
        return _record_status(store, record, get_launcher(record.backend, settings).status(record.handle))
    try:
        launcher: Launcher | None = get_launcher(record.backend, settings)
    except BadInput:  # a backend no longer available: nothing to adopt, its launch is long over
        launcher = None
    if launcher is not None and (handle := launcher.adopt(record)):
        record = _record_started(store, record.id, handle)
        return _record_status(store, record, launcher.status(record.handle))
    return _end_if_launch_lost(store, launcher, record)


def refresh_runs(store: StateStore, settings: Settings, records: list[RunRecord]) -> list[RunRecord]:
    """`refresh_run` for many runs, in order, with one question per backend (`Launcher.statuses`):
    the watcher's poll of every waiting run asks Slurm once, not once per job."""
    refreshed = {record.id: record for record in records}
    asking: dict[str, list[RunRecord]] = {}
    for record in records:
        if record.state in ACTIVE_STATES and record.handle:
            asking.setdefault(record.backend, []).append(record)
        else:
            refreshed[record.id] = refresh_run(store, settings, record)
    for backend, group in asking.items():
        statuses = get_launcher(backend, settings).statuses([record.handle for record in group])
        for record, status in zip(group, statuses, strict=True):
            refreshed[record.id] = _record_status(store, record, status)
    return [refreshed[record.id] for record in records]


def _record_status(store: StateStore, record: RunRecord, status: LaunchStatus) -> RunRecord:
    if status.job_id and record.handle.get("job_id") != status.job_id:
        record = store.update_handle(record.id, job_id=status.job_id)
    if not status.ended:
        return record
    if status.reason:
        store.update_handle(record.id, end_reason=status.reason)
    return store.update_run(
        record.id, if_state=ACTIVE_STATES, state=status.state, exit_code=status.exit_code, ended_at=status.ended_at
    )


def _end_if_launch_lost(store: StateStore, launcher: Launcher | None, record: RunRecord) -> RunRecord:
    """Mark `record` crashed once its backend's launch timeout (`launcher`: None when the backend
    is no longer available) passed without a handle."""
    timeout = float((launcher or Launcher).launch_timeout_s)
    if time.time() - record.created_at <= timeout:
        return record  # its launch may still be under way
    ended = store.update_run(record.id, if_state=ACTIVE_STATES, state="crashed", ended_at=time.time())
    if ended.state == "crashed" and not ended.handle:
        ended = store.update_handle(
            record.id,
            end_reason=f"no handle recorded within {timeout:g}s: the launch was lost (the bot stopped mid-launch)",
        )
    return ended


def active_runs(
    store: StateStore, settings: Settings, *, repo: str | None = None, branch: str | None = None
) -> list[RunRecord]:
    """Runs still queued or running, after checking each with its backend; newest first."""
    records = store.list_runs(repo=repo, branch=branch, state=ACTIVE_STATES)
    refreshed = [refresh_run(store, settings, record) for record in records]
    return [record for record in refreshed if record.state in ACTIVE_STATES]


def cancel_run(store: StateStore, settings: Settings, run_id: str) -> RunRecord:
    record = store.get_run(run_id)
    if record is None:
        raise BadInput(f"no run with id {run_id!r}")
    if record.state in ACTIVE_STATES and record.handle:
        get_launcher(record.backend, settings).cancel(record.handle)
    return refresh_run(store, settings, record)
