"""W&B Launch backend: push the branch's job onto a W&B Launch queue; an agent runs it.

`launch.wandb` names the queue (`queue`, default "default"), where the run logs (`entity`,
`project`; the repo config's `wandb` section by default), and what runs: a W&B `job`
artifact or a `docker_image`, with the repo config's command as the entry point and the
launched commit as `git.version`. (wandb 0.31's `launch_add` ignores a git `uri`: it queues
only jobs and images, so a git repository is made a job first, `wandb job create git`.) The W&B run takes the bot's run id (`run_id` of
the queued item), so the run store finds it under the same id the state store keeps.

Status comes from that W&B run's state; while no run exists yet, from the queue item
(pending until an agent picks it up; FAILED when the agent could not start it). The console
log is the W&B run's own (output.log), which the branch's run listing reads online.

A run whose handle was never stored (the bot died inside the push) is adopted by its W&B run,
found by the run's id, once an agent has started it.
"""

from __future__ import annotations

import os
import shlex
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bot.core.errors import BadInput, BotError, OperationFailed, exception_line
from bot.core.settings import Settings
from bot.launchers.base import END_STATES, Handle, Launcher, LaunchSpec, LaunchStatus, keep_known, read_known
from bot.launchers.local import compose_script
from bot.runs.wandb_api import wandb_time
from bot.store.runs import RunRecord

NEEDS_KEY = "launch.backend wandb-launch needs a W&B API key: set WANDB_API_KEY"
DEFAULT_QUEUE = "default"
DEFAULT_PROJECT_QUEUE = "model-registry"  # where W&B keeps entity-wide queues
_RUN_STATES = {
    "pending": "queued",
    "preempting": "running",
    "preempted": "crashed",
    "running": "running",
    "finished": "finished",
    "failed": "failed",
    "crashed": "crashed",
    "killed": "killed",
}
# launch_add reads the key and server from the environment; calls that set them take turns.
_ENV_LOCK = threading.Lock()


class WandbLaunchLauncher(Launcher):
    name = "wandb-launch"

    def __init__(self, settings: Settings, config: Mapping[str, Any] | None = None):
        self.settings = settings
        self.config = config or {}
        self.options: dict[str, Any] = dict((self.config.get("launch") or {}).get("wandb") or {})

    # -- launch -----------------------------------------------------------------------

    def launch(self, spec: LaunchSpec) -> Handle:
        self._require_key()
        target = self.target()
        source = self.source(spec)
        log_path = Path(spec.log_path).resolve()
        known = {"backend": self.name, **target, "run_id": spec.run_id, "log_path": str(log_path)}
        keep_known(log_path, known)  # the W&B run takes the run's id: enough to adopt it once it starts
        with self._calling(f"adding the run to W&B Launch queue {target['queue']!r}"), self._wandb_env():
            from wandb.sdk.launch import launch_add

            queued = launch_add(
                queue_name=target["queue"],
                entity=target["entity"],
                project=target["project"],
                project_queue=target["project_queue"],
                run_id=spec.run_id,
                name=f"{spec.branch}@{spec.commit[:8]}",
                **source,
                **({"resource_args": self.options["resource_args"]} if self.options.get("resource_args") else {}),
            )
        return {**known, "queued_run_id": str(queued.id), "started_at": time.time()}

    def adopt(self, record: RunRecord) -> Handle | None:
        """The W&B run an agent started under the run's id. None until one has (or while W&B
        does not answer): the queue item's id comes only in W&B's answer to the push, and the
        public API cannot find an item by the run it will make, so an item no agent took before
        the launch timeout is lost with its run."""
        known = read_known(record)
        if known is None:
            return None
        try:
            run = self._find_run(known)
        except BadInput:  # no key: said, as Ray's adoption says a bad address, not a run lost in silence
            raise
        except BotError:
            return None
        if run is None:
            return None
        return {
            **known,
            "queued_run_id": None,
            "started_at": wandb_time(getattr(run, "created_at", None)) or time.time(),
        }

    def target(self) -> dict[str, str]:
        """Queue, entity and project: launch.wandb, then the repo config's wandb section, then settings."""
        wandb_section = self.config.get("wandb") or {}
        entity = self.options.get("entity") or wandb_section.get("entity") or self.settings.wandb_entity
        project = self.options.get("project") or wandb_section.get("project") or self.settings.wandb_project
        if not entity or not project:
            raise BadInput(
                "launch.backend wandb-launch needs a W&B entity and project: set launch.wandb.entity "
                "and launch.wandb.project (or wandb.entity and wandb.project)"
            )
        return {
            "queue": str(self.options.get("queue") or DEFAULT_QUEUE),
            "entity": str(entity),
            "project": str(project),
            "project_queue": str(self.options.get("project_queue") or DEFAULT_PROJECT_QUEUE),
        }

    def source(self, spec: LaunchSpec) -> dict[str, Any]:
        """What the agent runs: a W&B job artifact or a docker image, with the repo config's
        command as the entry point and the launched commit as the git version."""
        sources = {key: str(self.options[key]) for key in ("job", "docker_image") if self.options.get(key)}
        if len(sources) != 1:
            # wandb 0.31's launch_add ignores a bare git uri: a git repo becomes a job first.
            raise BadInput(
                "launch.backend wandb-launch needs exactly one of launch.wandb.job (a W&B job, e.g. "
                "from `wandb job create git <repo-url> --git-hash <commit>`) or launch.wandb.docker_image"
            )
        return {**sources, "version": spec.commit, "entry_point": entry_point(spec)}

    # -- status -----------------------------------------------------------------------

    def status(self, handle: Handle) -> LaunchStatus:
        run = self._find_run(handle)
        if run is not None:
            state = _RUN_STATES.get(run.state, "running")
            reason = "W&B marked the run preempted" if run.state == "preempted" else None
            return LaunchStatus(
                state,
                started_at=handle.get("started_at"),
                reason=reason,
                ended_at=time.time() if state in END_STATES else None,
            )
        item_state = self._queue_item_state(handle) if handle.get("queued_run_id") else None
        if item_state == "failed":
            return LaunchStatus(
                "failed",
                started_at=handle.get("started_at"),
                ended_at=time.time(),
                reason=f"the W&B Launch agent could not start queue item {handle['queued_run_id']} "
                f"(queue {handle['queue']!r})",
            )
        return LaunchStatus("queued", started_at=handle.get("started_at"))

    def _find_run(self, handle: Handle) -> Any | None:
        with self._calling(f"reading run {handle['run_id']}"):
            api = self._api(handle)
            found = api.runs(f"{handle['entity']}/{handle['project']}", filters={"name": handle["run_id"]}, per_page=1)
            return next(iter(found), None)

    def _queue_item_state(self, handle: Handle) -> str | None:
        with self._calling(f"reading queue item {handle['queued_run_id']}"):
            queued = self._api(handle).queued_run(
                handle["entity"],
                handle["project"],
                handle["queue"],
                handle["queued_run_id"],
                handle.get("project_queue"),
            )
            try:
                return queued.state
            except ValueError:  # the item is gone from the queue
                return None

    # -- cancel -----------------------------------------------------------------------

    def cancel(self, handle: Handle) -> None:
        run = self._find_run(handle)
        if run is not None:
            if _RUN_STATES.get(run.state) in END_STATES:
                return
            with self._calling(f"stopping run {handle['run_id']}"):
                run.stop()  # the run's process sees the stop request and exits as killed
            return
        if not handle.get("queued_run_id"):  # adopted from its run, which is gone: no item to find
            return
        with self._calling(f"removing queue item {handle['queued_run_id']}"):
            self._api(handle).queued_run(
                handle["entity"],
                handle["project"],
                handle["queue"],
                handle["queued_run_id"],
                handle.get("project_queue"),
            ).delete()

    # -- the client -------------------------------------------------------------------

    def _require_key(self) -> None:
        if not self.settings.wandb_api_key:
            raise BadInput(NEEDS_KEY)

    def _api(self, handle: Handle) -> Any:
        self._require_key()
        import wandb

        overrides = {"entity": handle["entity"], "project": handle["project"]}
        if self.settings.wandb_base_url:
            overrides["base_url"] = self.settings.wandb_base_url
        return wandb.Api(api_key=self.settings.wandb_api_key, overrides=overrides, timeout=30)

    @contextmanager
    def _wandb_env(self) -> Iterator[None]:
        """The bot's W&B key and server in the environment, for the calls that read only that."""
        wanted = {"WANDB_API_KEY": self.settings.wandb_api_key, "WANDB_BASE_URL": self.settings.wandb_base_url}
        with _ENV_LOCK:
            saved = {key: os.environ.get(key) for key in wanted}
            os.environ.update({key: value for key, value in wanted.items() if value})
            try:
                yield
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value

    @contextmanager
    def _calling(self, what: str) -> Iterator[None]:
        try:
            yield
        except BotError:
            raise
        except Exception as exc:
            detail = exception_line(exc, [self.settings.wandb_api_key])
            raise OperationFailed(f"W&B Launch failed while {what}: {detail}") from None


def entry_point(spec: LaunchSpec) -> list[str]:
    script = compose_script(spec.setup, spec.command)
    if script == spec.command:
        return shlex.split(spec.command)
    return ["sh", "-c", script]
