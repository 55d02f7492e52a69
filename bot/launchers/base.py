"""The one interface every launch backend implements.

A handle is a JSON-serialisable dict holding whatever the backend needs to find the job
again after the bot restarts (pid and start time, a Slurm job id, …). `status` and `cancel`
work from the handle alone.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.core.errors import BadInput
from bot.launchers import procs
from bot.store.runs import RunRecord

Handle = dict[str, Any]

# WANDB_MODE values under which a job without a key logs nowhere remote and prompts for nothing.
QUIET_WANDB_MODES = ("offline", "disabled", "dryrun")

# States a launcher reports; a subset of bot.runs.model.STATES.
END_STATES = ("finished", "failed", "crashed", "killed")


@dataclass
class LaunchSpec:
    repo: str  # absolute path or owner/name
    branch: str
    commit: str
    worktree: Path  # the checkout the job runs in
    command: str  # the repo config's launch.command
    log_path: Path  # where the job's stdout+stderr go
    run_id: str
    setup: str | None = None  # the repo config's launch.setup, run first
    env: dict[str, str] = field(default_factory=dict)  # added to the launcher's base environment


@dataclass
class LaunchStatus:
    state: str  # one of ACTIVE_STATES or END_STATES
    exit_code: int | None = None
    ended_at: float | None = None  # unix seconds
    started_at: float | None = None
    job_id: str | None = None  # an id the launch script printed, when it printed one
    reason: str | None = None  # the scheduler's own word on how it ended (PREEMPTED, …),
    # or why an active state is a guess (another host's run)

    @property
    def ended(self) -> bool:
        return self.state in END_STATES


class Launcher(ABC):
    name: str
    # The longest `launch` may take. A recorded run still without a handle after this long
    # lost its launch (the bot died between recording the run and storing its handle).
    launch_timeout_s: float = 60.0
    settings: Any
    base_env: Mapping[str, str] | None = None  # None: the bot's own environment when used

    def inherited_env(self) -> Mapping[str, str]:
        return os.environ if self.base_env is None else self.base_env

    def environment(self, spec: LaunchSpec) -> dict[str, str]:
        """What the job runs with (see `job_environment`), its W&B runs written to the worktree."""
        return job_environment(self.settings, spec, self.inherited_env(), wandb_dir=Path(spec.worktree).resolve())

    def check_ready(self, spec: LaunchSpec) -> None:
        """Called before the run is recorded: raise when this launcher cannot launch `spec` (its
        sandbox is refused), and do now what `launch` can reuse, so that little happens between
        recording the run and starting it. Most backends have nothing to do."""
        return None

    @abstractmethod
    def launch(self, spec: LaunchSpec) -> Handle:
        """Start the job and return as soon as it is running (not when it ends)."""

    def adopt(self, record: RunRecord) -> Handle | None:
        """The handle of a launch the bot did not see finish: `record` was recorded, but the bot
        stopped inside `launch` (or has not left it yet), so no handle was stored. Rebuilt from
        what the backend left behind, the same handle `launch` returns, so adopting a run twice,
        or while its launch is still under way, stores the same values. None: nothing started
        yet, or this backend cannot tell (then the run is lost after `launch_timeout_s`)."""
        return None

    @abstractmethod
    def status(self, handle: Handle) -> LaunchStatus:
        """Where the job stands now."""

    def statuses(self, handles: list[Handle]) -> list[LaunchStatus]:
        """Where each job stands now, in order. A backend that can ask its scheduler about all
        of them at once (one `scontrol`, one Ray job list) overrides this; the default asks one
        by one, which for a local run is reading its status file."""
        return [self.status(handle) for handle in handles]

    @abstractmethod
    def cancel(self, handle: Handle) -> None:
        """Stop the job; a job that already ended is left alone."""


# The bot's own credentials: no job ever gets them, whatever environment it starts from.
BOT_SECRET_VARS = (
    "GITHUB_PRIVATE_KEY",
    "GITHUB_PRIVATE_KEY_PATH",
    "GITHUB_WEBHOOK_SECRET",
    "WANDB_WEBHOOK_SECRET",
    "ANTHROPIC_API_KEY",
    "GITHUB_TOKEN",
    "GH_TOKEN",
)


def without_bot_secrets(settings: Any, env: Mapping[str, str]) -> dict[str, str]:
    """`env` less the bot's secrets: the variables above, and any variable (other than the
    WANDB_API_KEY the job needs) whose value is one of the bot's configured secrets.

    This keeps the secrets out of what the job is handed. It is not isolation: a job running
    under the bot's uid can still read /proc/<bot pid>/environ (and the bot's files); only
    running jobs as a separate uid (or in a container) keeps them from it.
    """
    wandb_key = getattr(settings, "wandb_api_key", None)
    secrets = {
        s.strip() for s in (settings.secrets() if settings is not None else []) if s and s.strip() and s != wandb_key
    }
    return {
        name: value
        for name, value in env.items()
        if name not in BOT_SECRET_VARS and (name == "WANDB_API_KEY" or value.strip() not in secrets)
    }


def run_locations(spec: LaunchSpec, env: Mapping[str, str]) -> Handle:
    """Where a job ran and where its W&B runs go, for its handle: the bot searches there for a
    run whose code chose its own folder (`wandb.init(dir=…)`, Lightning's `save_dir`)."""
    found: Handle = {"worktree": str(Path(spec.worktree).resolve())}
    if env.get("WANDB_DIR"):
        found["wandb_dir"] = env["WANDB_DIR"]
    return found


def keep_known(log_path: Path, known: Handle) -> None:
    """Keep beside the run's log the parts of its handle known before the backend is asked to
    start the job: with what the backend can say of the job it made for the run, `adopt`
    rebuilds the handle when the bot dies between asking and storing the answer."""
    procs.write_json(_known_path(log_path), known)


def read_known(record: RunRecord) -> Handle | None:
    """What `keep_known` kept for the run; None when the backend has not been asked yet."""
    if not record.log_path:
        return None
    return procs.read_json(_known_path(Path(record.log_path).resolve())) or None


def _known_path(log_path: Path) -> Path:
    return log_path.with_name(log_path.name + ".handle.json")


def existing_worktree(spec: LaunchSpec) -> Path:
    """The job's worktree, resolved; BadInput when it is not a folder."""
    worktree = Path(spec.worktree).resolve()
    if not worktree.is_dir():
        raise BadInput(f"worktree {spec.worktree} is not a directory")
    return worktree


def job_environment(
    settings: Any, spec: LaunchSpec, base: Mapping[str, str], *, wandb_dir: Path | None = None
) -> dict[str, str]:
    """What a job runs with: `base`, the run's own variables, and W&B told where to log; never
    the bot's own secrets (see `without_bot_secrets`).

    `wandb_dir`: where the job's W&B runs go (`WANDB_DIR`, unless the user set one), so a job
    that `cd`s into a sub-folder still writes `<worktree>/wandb/` where the bot reads runs."""
    env = without_bot_secrets(settings, {**base, **spec.env})
    if wandb_dir is not None:
        env.setdefault("WANDB_DIR", str(wandb_dir))
    # Set in the bot's environment once it used wandb in-process (the API, Launch): a job
    # that inherits it logs through the bot's wandb-core, and loses its run's last records
    # when the bot stops. Each job starts its own.
    env.pop("WANDB_SERVICE", None)
    if settings.wandb_api_key and not env.get("WANDB_API_KEY"):
        env["WANDB_API_KEY"] = settings.wandb_api_key
    if settings.wandb_base_url and not env.get("WANDB_BASE_URL"):
        env["WANDB_BASE_URL"] = settings.wandb_base_url
    if not env.get("WANDB_API_KEY") and env.get("WANDB_MODE") not in QUIET_WANDB_MODES:
        env["WANDB_MODE"] = "offline"  # no key: log locally rather than fail or prompt
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "FIX_AND_RELAUNCH_RUN_ID": spec.run_id,
            "FIX_AND_RELAUNCH_BRANCH": spec.branch,
            "FIX_AND_RELAUNCH_COMMIT": spec.commit,
            "FIX_AND_RELAUNCH_REPO": str(spec.repo),
        }
    )
    return env
