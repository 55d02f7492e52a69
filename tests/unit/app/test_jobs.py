"""Job payloads: built in one place per trigger, stored under the keys earlier releases wrote."""

from __future__ import annotations

import json

import pytest

from bot.app.jobs import (
    RUN_EVENTS,
    WANDB_PAYLOAD_TEMPLATE,
    AlertJob,
    BadPayload,
    CommentJob,
    FixJob,
    Job,
    JobKind,
    JobStatus,
    payload_from_json,
)

REPO = "Codertocat/Hello-World"
API = "https://api.github.com/repos/Codertocat/Hello-World"

# Payloads exactly as the previous release's two `fix_job` functions and `alert_job` wrote them.
COMMENT_JOB = {
    "kind": "fix",
    "repo": "alice/Hello-World",
    "base_repo": REPO,
    "clone_url": "https://github.com/alice/Hello-World.git",
    "installation_id": 1,
    "pr": 1,
    "pr_url": f"{API}/pulls/1",
    "comments_url": f"{API}/issues/1/comments",
    "branch": "exp-a",
    "head_sha": "a" * 40,
    "delivery_id": "delivery-1",
    "comment_id": 492700400,
    "dry_run": True,
    "hint": "the loss explodes",
    "requested_by": "Codertocat",
}
RUN_JOB = {
    "kind": "fix",
    "repo": REPO,
    "base_repo": REPO,
    "clone_url": f"https://github.com/{REPO}.git",
    "installation_id": 1,
    "pr": 5,
    "pr_url": f"{API}/pulls/5",
    "comments_url": f"{API}/issues/5/comments",
    "branch": "exp-b",
    "head_sha": "b" * 40,
    "run_id": "r1",
    "run_path": "team/proj/r1",
    "delivery_id": None,
    "dry_run": False,
    "hint": None,
    "requested_by": "wandb",
}
# A `/fix-and-relaunch` comment not yet authorised, as the request side queues it.
UNAUTHORISED_COMMENT = {
    "kind": "comment",
    "repo": REPO,
    "installation_id": 1,
    "pr": 1,
    "pr_url": f"{API}/pulls/1",
    "comments_url": f"{API}/issues/1/comments",
    "reactions_url": f"{API}/issues/comments/492700400/reactions",
    "collaborators_url": f"{API}/collaborators{{/collaborator}}",
    "comment_id": 492700400,
    "author": "Codertocat",
    "association": "OWNER",
    "delivery_id": "delivery-1",
    "dry_run": True,
    "hint": "the loss explodes",
}
ALERT_JOB = {"kind": "wandb_alert", "entity": "team", "project": "proj", "run_path": None, "author": "ada"}


def pull(number: int, head_repo: str, ref: str, sha: str) -> dict:
    return {
        "number": number,
        "url": f"{API}/pulls/{number}",
        "comments_url": f"{API}/issues/{number}/comments",
        "head": {
            "ref": ref,
            "sha": sha,
            "label": f"{head_repo.split('/')[0]}:{ref}",
            "repo": {"full_name": head_repo, "clone_url": f"https://github.com/{head_repo}.git"},
        },
        "base": {"ref": "main", "repo": {"full_name": REPO}},
    }


@pytest.mark.parametrize(
    "stored",
    [COMMENT_JOB, RUN_JOB, ALERT_JOB, UNAUTHORISED_COMMENT],
    ids=["comment", "failed-run", "alert", "unauthorised-comment"],
)
def test_a_stored_payload_reads_typed_and_writes_back_what_earlier_releases_read(stored):
    payload = payload_from_json(stored["kind"], json.loads(json.dumps(stored)))
    assert payload.kind == stored["kind"]
    written = json.loads(json.dumps(payload.to_json()))
    assert {key: written[key] for key in stored} == stored  # every key an earlier release wrote, same values
    assert written.keys() == stored.keys()
    assert payload_from_json(written["kind"], written) == payload


def test_a_payload_stored_without_its_optional_keys_takes_their_defaults():
    fix = FixJob.from_json({"repo": REPO, "branch": "exp-a", "clone_url": "https://x/y.git", "installation_id": 1})
    assert (fix.pr, fix.run_path, fix.dry_run, fix.requested_by) == (None, None, False, None)


def test_fields_are_read_by_attribute():
    fix = FixJob.from_json(COMMENT_JOB)
    assert (fix.repo, fix.base_repo, fix.branch, fix.installation_id, fix.comment_id) == (
        "alice/Hello-World",
        REPO,
        "exp-a",
        1,
        492700400,
    )
    assert fix.dry_run and not fix.from_alert and fix.check_repo == REPO and fix.run_path is None
    run = FixJob.from_json(RUN_JOB)
    assert run.from_alert and (run.run_id, run.comment_id) == ("r1", None)
    assert fix.lane == "branch:alice/Hello-World#exp-a"
    alert = AlertJob.from_json(ALERT_JOB)
    assert (alert.lane, alert.repo, alert.branch) == ("wandb:team/proj", None, None)


def test_for_comment_builds_the_job_an_authorised_comment_asks_for():
    comment = CommentJob.from_json(UNAUTHORISED_COMMENT)
    assert (comment.lane, comment.branch) == ("github:comments", None)
    fix = FixJob.for_comment(comment, pull(1, "alice/Hello-World", "exp-a", "a" * 40))
    assert fix.to_json() == COMMENT_JOB


def test_for_failed_run_builds_the_job_of_a_placed_run():
    run = {"id": "r1", "path": "team/proj/r1", "state": "failed", "commit": "b" * 40}
    fix = FixJob.for_failed_run(run, pull(5, REPO, "exp-b", "f" * 40), installation_id=1)
    assert fix.to_json() == RUN_JOB  # the run's commit, not the PR's head


def test_template_is_valid_json_once_filled():
    filled = (
        WANDB_PAYLOAD_TEMPLATE.replace("${event_type}", "RUN_STATE")
        .replace("${entity_name}", "team")
        .replace("${project_name}", "proj")
        .replace("${event_author}", "ada")
    )
    assert AlertJob.from_payload(json.loads(filled)).to_json() == ALERT_JOB


def test_an_alert_may_name_its_run_and_names_are_trimmed():
    alert = AlertJob.from_payload(
        {"event_type": "RUN_FAILED", "entity": " team ", "project": "proj", "run_path": "team/proj/r9"}
    )
    assert alert == AlertJob(entity="team", project="proj", run_path="team/proj/r9")
    assert RUN_EVENTS == {"RUN_STATE", "RUN_STATE_CHANGED", "RUN_FAILED"}


@pytest.mark.parametrize(
    "payload",
    [
        [1, 2],
        {"event_type": "RUN_FAILED", "project": "p"},
        {"event_type": "RUN_FAILED", "entity": "", "project": "p"},
        {"event_type": "RUN_STATE", "entity": "${entity_name}", "project": "p"},
        {"event_type": "RUN_STATE", "entity": "t", "project": "p", "run_path": "just-an-id"},
    ],
)
def test_bad_payloads(payload):
    with pytest.raises(BadPayload):
        AlertJob.from_payload(payload)


def test_other_events_are_ignored():
    assert AlertJob.from_payload({"event_type": "CREATE_ARTIFACT", "entity": "t", "project": "p"}) is None


def test_statuses_and_kinds_read_as_their_stored_values():
    assert JobStatus("running") is JobStatus.RUNNING and JobStatus.RUNNING == "running"
    assert f"{JobStatus.RUNNING}" == str(JobStatus.RUNNING) == "running"
    assert json.dumps({JobKind.FIX: JobStatus.DONE}) == '{"fix": "done"}'


def test_a_job_gives_its_payload_by_kind():
    fix = Job(id=1, status=JobStatus.QUEUED, payload=FixJob.from_json(COMMENT_JOB))
    alert = Job(id=2, status=JobStatus.RUNNING, payload=AlertJob.from_json(ALERT_JOB))
    assert (fix.kind, fix.repo, fix.branch, fix.fix.pr) == (JobKind.FIX, "alice/Hello-World", "exp-a", 1)
    assert (alert.kind, alert.repo, alert.alert.entity) == (JobKind.WANDB_ALERT, None, "team")
    with pytest.raises(TypeError, match="job 2 is a wandb_alert job"):
        _ = alert.fix
    with pytest.raises(TypeError, match="job 1 is a fix job"):
        _ = fix.alert
