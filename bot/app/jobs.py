"""The server's jobs as typed objects: what each trigger asks for, and a job as the queue holds it.

A job's payload is stored as JSON. The keys are those of earlier releases, so a job queued
before an upgrade still runs after it; code reads the payload by attribute.

- `CommentJob`: a `/fix-and-relaunch` comment as the webhook carried it, not yet authorised. The
  request side only enqueues it; a worker reacts 👀, checks the author's permission, looks up the
  pull request and queues its fix job (bot.app.comments).
- `FixJob`: fix one PR branch. Built by `FixJob.for_comment` (an authorised comment on a pull
  request) or `FixJob.for_failed_run` (a failed W&B run placed on a PR by an alert).
- `AlertJob`: a W&B run-failure alert, resolved by a worker into fix jobs. Built by
  `AlertJob.from_payload` from the webhook's body.
- `ConfigCheckJob`: a pull request's head commit whose repo config a worker checks, posting a
  check run with its problems when the pull request edits the file (bot.app.checks).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum
from typing import Any, ClassVar, TypeVar

from bot.loop.waits import Wait

# The body a W&B webhook automation must send; `${…}` are W&B's payload variables.
WANDB_PAYLOAD_TEMPLATE = (
    '{"event_type": "${event_type}", "entity": "${entity_name}", '
    '"project": "${project_name}", "author": "${event_author}"}'
)
RUN_EVENTS = frozenset({"RUN_STATE", "RUN_STATE_CHANGED", "RUN_FAILED"})
ALERT_REQUESTER = "wandb"  # `requested_by` of a fix job an alert made
COMMENTS_LANE = "github:comments"  # every comment job: none waits for another, one worker serves them first


class TextEnum(str, Enum):
    """An enum that compares, formats and serialises as its value: the text the database stores."""

    def __str__(self) -> str:
        return str(self.value)


class JobKind(TextEnum):
    FIX = "fix"
    WANDB_ALERT = "wandb_alert"
    COMMENT = "comment"
    CONFIG_CHECK = "config_check"


class JobStatus(TextEnum):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"  # parked at a wait (bot.loop.waits): no worker holds it; the watcher wakes it
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.WAITING)  # a waiting job still holds its lane


def branch_lane(repo: str, branch: str) -> str:
    """The lane of a branch's fix jobs: one active job per repo and branch."""
    return f"branch:{repo}#{branch}"


P = TypeVar("P", bound="StoredPayload")


class StoredPayload:
    """A payload dataclass as stored: its fields under their own names, and its kind."""

    kind: ClassVar[JobKind]
    omitted_unset: ClassVar[frozenset[str]] = frozenset()  # keys written only when set, as before

    def to_json(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
        return {
            "kind": self.kind.value,
            **{k: v for k, v in values.items() if v is not None or k not in self.omitted_unset},
        }

    @classmethod
    def from_json(cls: type[P], data: dict[str, Any]) -> P:
        """A key the data lacks takes its field's default (a job queued by an earlier release)."""
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{key: value for key, value in data.items() if key in names})


class BadPayload(ValueError):
    """The body is JSON but not a usable W&B alert; the server answers 400."""


@dataclass(frozen=True)
class Command:
    """What a `/fix-and-relaunch` comment asks for."""

    dry_run: bool = False
    hint: str | None = None


@dataclass(frozen=True)
class FixJob(StoredPayload):
    """Fix the head branch of a pull request. Optional fields are those a trigger may not know."""

    kind: ClassVar[JobKind] = JobKind.FIX
    omitted_unset: ClassVar[frozenset[str]] = frozenset({"run_id", "run_path", "comment_id"})  # trigger-specific

    repo: str  # the head repository, where the branch lives and is pushed
    branch: str
    clone_url: str  # used unless settings.github_git_url says otherwise
    installation_id: int  # a worker asks for a token with it; never a stored token
    base_repo: str | None = None  # where the PR, its comments and check runs live
    pr: int | None = None
    pr_url: str | None = None
    comments_url: str | None = None
    head_sha: str | None = None  # the commit the requester saw
    run_id: str | None = None  # the failed W&B run an alert placed on the PR
    run_path: str | None = None
    delivery_id: str | None = None
    comment_id: int | None = None
    dry_run: bool = False
    hint: str | None = None
    requested_by: str | None = None

    @classmethod
    def for_comment(cls, comment: CommentJob, pr: dict[str, Any]) -> FixJob:
        """The job of an authorised `/fix-and-relaunch` comment on `pr` (the pull request as GitHub gives it)."""
        head = pr["head"]
        return cls(
            repo=head["repo"]["full_name"],
            base_repo=comment.repo,
            clone_url=head["repo"]["clone_url"],
            installation_id=comment.installation_id,
            pr=pr["number"],
            pr_url=pr["url"],
            comments_url=comment.comments_url,
            branch=head["ref"],
            head_sha=head["sha"],
            delivery_id=comment.delivery_id,
            comment_id=comment.comment_id,
            dry_run=comment.dry_run,
            hint=comment.hint,
            requested_by=comment.author,
        )

    @classmethod
    def for_failed_run(cls, run: dict[str, Any], pr: dict[str, Any], installation_id: int) -> FixJob:
        """The job of a failed W&B run (id, path, commit) placed on the open pull request `pr`."""
        head = pr["head"]
        return cls(
            repo=head["repo"]["full_name"],
            base_repo=pr["base"]["repo"]["full_name"],
            clone_url=head["repo"]["clone_url"],
            installation_id=installation_id,
            pr=pr["number"],
            pr_url=pr["url"],
            comments_url=pr["comments_url"],
            branch=head["ref"],
            head_sha=run.get("commit"),
            run_id=run.get("id"),
            run_path=run["path"],
            requested_by=ALERT_REQUESTER,
        )

    @property
    def from_alert(self) -> bool:
        return self.requested_by == ALERT_REQUESTER

    @property
    def check_repo(self) -> str:
        """Where check runs go: the PR's repository."""
        return self.base_repo or self.repo

    @property
    def lane(self) -> str:
        return branch_lane(self.repo, self.branch)


@dataclass(frozen=True)
class AlertJob(StoredPayload):
    """A W&B alert: the failed runs of `entity/project` (maybe naming one) await placing on PRs."""

    kind: ClassVar[JobKind] = JobKind.WANDB_ALERT

    entity: str
    project: str
    run_path: str | None = None
    author: str | None = None

    @classmethod
    def from_payload(cls, payload: Any) -> AlertJob | None:
        """The job of a W&B webhook body; None for events the bot does not act on.

        Raises BadPayload when the body cannot be an alert (e.g. the template's variables
        were left unfilled)."""
        if not isinstance(payload, dict):
            raise BadPayload("the payload must be a JSON object")
        event_type = payload.get("event_type")
        if not isinstance(event_type, str) or event_type not in RUN_EVENTS:
            return None
        entity, project, run_path = payload.get("entity"), payload.get("project"), payload.get("run_path")
        entity, project = _name("entity", entity), _name("project", project)
        if run_path is not None and (not isinstance(run_path, str) or run_path.count("/") != 2):
            raise BadPayload("'run_path' must look like entity/project/runid")
        author = payload.get("author")
        return cls(
            entity=entity, project=project, run_path=run_path, author=author if isinstance(author, str) else None
        )

    @property
    def lane(self) -> str:
        """One waiting alert per W&B project."""
        return f"wandb:{self.entity}/{self.project}"

    @property
    def repo(self) -> None:
        """An alert names no repository until a worker places its runs."""
        return None

    @property
    def branch(self) -> None:
        return None


@dataclass(frozen=True)
class CommentJob(StoredPayload):
    """A `/fix-and-relaunch` comment on a pull request, as its webhook carried it (the request side
    checked its shape, never GitHub). What the worker needs comes from the payload's own URLs."""

    kind: ClassVar[JobKind] = JobKind.COMMENT

    repo: str  # where the pull request and the comment live
    installation_id: int
    pr: int
    pr_url: str
    comments_url: str
    reactions_url: str
    collaborators_url: str  # a URL template: `{/collaborator}`
    comment_id: int
    author: str
    association: str  # the author's `author_association` (OWNER needs no permission lookup)
    delivery_id: str | None = None
    dry_run: bool = False
    hint: str | None = None

    @property
    def lane(self) -> str:
        return COMMENTS_LANE

    @property
    def branch(self) -> None:
        """The branch is the pull request's head: known once a worker looked the pull request up."""
        return None


@dataclass(frozen=True)
class ConfigCheckJob(StoredPayload):
    """Check the repo config of a pull request's head commit (from a `pull_request` webhook)."""

    kind: ClassVar[JobKind] = JobKind.CONFIG_CHECK

    repo: str  # the base repository: where the pull request and the check run live
    head_repo: str  # where the head commit's file is read
    head_sha: str
    pr: int
    installation_id: int
    delivery_id: str | None = None

    @property
    def lane(self) -> str:
        """One waiting check per commit: a redelivery or a reopen while it waits adds nothing."""
        return f"config-check:{self.repo}@{self.head_sha}"

    @property
    def branch(self) -> None:
        return None


def _name(what: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or "$" in value:
        raise BadPayload(f"'{what}' must name the W&B {what} (payload template: {WANDB_PAYLOAD_TEMPLATE})")
    return value.strip()


Payload = FixJob | AlertJob | CommentJob | ConfigCheckJob
PAYLOADS: dict[JobKind, type[FixJob] | type[AlertJob] | type[CommentJob] | type[ConfigCheckJob]] = {
    JobKind.FIX: FixJob,
    JobKind.WANDB_ALERT: AlertJob,
    JobKind.COMMENT: CommentJob,
    JobKind.CONFIG_CHECK: ConfigCheckJob,
}


def payload_from_json(kind: str, data: dict[str, Any]) -> Payload:
    """A stored payload as its typed object; `kind` is the job's kind column."""
    return PAYLOADS[JobKind(kind)].from_json(data)


@dataclass(frozen=True)
class Job:
    """A job as the queue holds it: its id and status, and what it was asked to do."""

    id: int
    status: JobStatus
    payload: Payload
    tries: int = 0
    error: str | None = None
    wait: Wait | None = None  # what the job waits for (waiting), or was woken from (queued again)

    @property
    def kind(self) -> JobKind:
        return self.payload.kind

    @property
    def repo(self) -> str | None:
        return self.payload.repo

    @property
    def branch(self) -> str | None:
        return self.payload.branch

    @property
    def fix(self) -> FixJob:
        """The payload of a fix job; TypeError for an alert."""
        if not isinstance(self.payload, FixJob):
            raise TypeError(f"job {self.id} is a {self.kind} job, not a fix job")
        return self.payload

    @property
    def comment(self) -> CommentJob:
        """The payload of a comment job; TypeError for another kind."""
        if not isinstance(self.payload, CommentJob):
            raise TypeError(f"job {self.id} is a {self.kind} job, not a comment job")
        return self.payload

    @property
    def alert(self) -> AlertJob:
        """The payload of an alert job; TypeError for a fix job."""
        if not isinstance(self.payload, AlertJob):
            raise TypeError(f"job {self.id} is a {self.kind} job, not an alert job")
        return self.payload
