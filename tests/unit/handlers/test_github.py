"""GitHub handlers dispatched through the real router, then the worker's side of a comment job
(bot.app.comments) with real gidgethub against the fake GitHub."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from gidgethub import sansio

import handlers
from bot.app.comments import authorise_comment
from bot.app.forge import GitHubForge
from bot.app.github_auth import GitHubApp
from bot.app.group_commit import GroupCommit
from bot.app.jobs import COMMENTS_LANE, FixJob, JobKind
from bot.app.messages import DIAGNOSING, job_marker
from bot.core.secrets import Redactor
from handlers.github import parse_command
from tests.support.fake_github import INSTALLATION_ID, example, pr_comment

REPO = "Codertocat/Hello-World"


@pytest.fixture
async def gh(settings, fake_github):
    async with aiohttp.ClientSession() as session:
        gh = await GitHubApp(settings, session).gh_for_installation(INSTALLATION_ID)
        fake_github.calls.clear()  # the token request; tests look at what handlers do
        gh.fake = fake_github
        yield gh


def comment_event(fake, body="/fix-and-relaunch", delivery="d-1", comment_id=None, **kw):
    data = pr_comment(fake.url, body, **kw)
    if comment_id is not None:  # another comment on the same PR
        data["comment"]["id"] = comment_id
    return sansio.Event(data, event="issue_comment", delivery_id=delivery)


async def dispatch(event, gh, queue, **kw):
    """The request side (no GitHub call: `gh=None`), then a worker on the comment jobs it queued."""
    calls = len(gh_calls(gh))
    await handlers.router.dispatch(event, None, queue=queue, receive=GroupCommit(queue).receive, **kw)
    assert len(gh_calls(gh)) == calls, "the request side called GitHub"
    while (job := queue.claim(COMMENTS_LANE)) is not None:
        await authorise_comment(job, gh, queue=queue, redactor=Redactor())
        queue.finish(job.id)


def gh_calls(gh):
    return gh.fake.calls


def fix_jobs(queue, status=None):
    return [j for j in queue.jobs(status) if j.kind == JobKind.FIX]


def fix_job(branch: str, delivery: str) -> FixJob:
    return FixJob(
        repo=REPO, branch=branch, clone_url=f"https://github.com/{REPO}.git", installation_id=1, delivery_id=delivery
    )


def replies(fake):
    return [c.body["body"] for c in fake.find("POST", "/issues/1/comments")]


@pytest.mark.parametrize(
    "body, expected",
    [
        ("/fix-and-relaunch", (False, None)),
        ("  /fix-and-relaunch --dry-run", (True, None)),
        ("/fix-and-relaunch lower the lr --dry-run please", (True, "lower the lr  please")),
        ("/fix-and-relaunch\nthe data path moved to /mnt/data", (False, "the data path moved to /mnt/data")),
        ("/fix-and-relaunch --dry-runner", (False, "--dry-runner")),
    ],
)
def test_parse_command(body, expected):
    command = parse_command(body)
    assert (command.dry_run, command.hint) == expected


@pytest.mark.parametrize("body", ["please /fix-and-relaunch", "/fix-and-relaunchnow", "", None, "LGTM"])
def test_not_a_command(body):
    assert parse_command(body) is None


async def test_reader_is_refused_with_a_short_reply(gh, fake_github, queue):
    fake_github.add_pull(REPO, 1, head_ref="exp-a", head_sha="a" * 40)
    fake_github.permissions["mallory"] = "read"
    await dispatch(comment_event(fake_github, association="NONE", login="mallory"), gh, queue)
    [perm] = fake_github.find("GET", "/permission")
    assert perm.path == f"/repos/{REPO}/collaborators/mallory/permission"
    [reply] = replies(fake_github)
    assert reply.startswith("<!-- fix-and-relaunch:not-allowed -->") and "@mallory" in reply
    assert len(reply) < 200
    assert fix_jobs(queue) == [] and fake_github.find("GET", "/pulls/1") == []


async def test_stranger_not_a_collaborator_is_refused(gh, fake_github, queue):
    fake_github.add_pull(REPO, 1, head_ref="exp-a", head_sha="a" * 40)
    await dispatch(comment_event(fake_github, association="NONE", login="stranger"), gh, queue)
    assert "not-allowed" in replies(fake_github)[0] and fix_jobs(queue) == []


async def test_contributor_with_write_permission_is_allowed(gh, fake_github, queue):
    fake_github.add_pull(REPO, 1, head_ref="exp-a", head_sha="a" * 40)
    fake_github.permissions["ada"] = "maintain"
    await dispatch(comment_event(fake_github, association="CONTRIBUTOR", login="ada"), gh, queue)
    [job] = fix_jobs(queue)
    assert job.fix.requested_by == "ada" and replies(fake_github) == []


@pytest.mark.parametrize("association", ["MEMBER", "COLLABORATOR"])
@pytest.mark.parametrize(
    "permission, allowed", [("read", False), ("triage", False), (None, False), ("write", True), ("admin", True)]
)
async def test_member_and_collaborator_are_checked_not_trusted(
    gh, fake_github, queue, association, permission, allowed
):
    """MEMBER is any org member, COLLABORATOR includes read and triage: the permission decides."""
    fake_github.add_pull(REPO, 1, head_ref="exp-a", head_sha="a" * 40)
    if permission:
        fake_github.permissions["eve"] = permission
    await dispatch(comment_event(fake_github, association=association, login="eve"), gh, queue)
    [perm] = fake_github.find("GET", "/permission")
    assert perm.path == f"/repos/{REPO}/collaborators/eve/permission"
    assert len(fix_jobs(queue)) == (1 if allowed else 0)
    assert any("not-allowed" in r for r in replies(fake_github)) is not allowed


async def test_owner_needs_no_permission_lookup(gh, fake_github, queue):
    fake_github.add_pull(REPO, 1, head_ref="exp-a", head_sha="a" * 40)
    await dispatch(comment_event(fake_github, association="OWNER"), gh, queue)
    assert fake_github.find("GET", "/permission") == [] and len(fix_jobs(queue)) == 1


@pytest.mark.parametrize(
    "kw",
    [
        {"user_type": "Bot", "login": "some-app[bot]"},
        {"body": "/fix-and-relaunch\n<!-- fix-and-relaunch:job=3 -->"},
    ],
)
async def test_bots_and_own_comments_are_ignored(gh, fake_github, queue, kw):
    await dispatch(comment_event(fake_github, **kw), gh, queue)
    assert fake_github.calls == [] and fix_jobs(queue) == []


async def test_plain_issue_and_plain_comment_are_ignored(gh, fake_github, queue):
    on_issue = comment_event(fake_github)
    del on_issue.data["issue"]["pull_request"]
    await dispatch(on_issue, gh, queue)
    await dispatch(comment_event(fake_github, body="looks good", delivery="d-2"), gh, queue)
    edited = comment_event(fake_github, delivery="d-3")
    edited.data["action"] = "edited"
    await dispatch(edited, gh, queue)
    assert fake_github.calls == [] and fix_jobs(queue) == []


async def test_fork_without_maintainer_edits_is_explained(gh, fake_github, queue):
    fake_github.add_pull(
        REPO, 1, head_ref="exp-a", head_sha="b" * 40, head_repo="alice/Hello-World", maintainer_can_modify=False
    )
    await dispatch(comment_event(fake_github), gh, queue)
    [reply] = replies(fake_github)
    assert "<!-- fix-and-relaunch:fork -->" in reply and "alice:exp-a" in reply
    assert fix_jobs(queue) == []


@pytest.mark.parametrize("pull", [{"maintainer_can_modify": True}, {"push": True}])
async def test_pushable_fork_queues_a_job_on_the_fork(gh, fake_github, queue, pull):
    fake_github.add_pull(REPO, 1, head_ref="exp-a", head_sha="b" * 40, head_repo="alice/Hello-World", **pull)
    await dispatch(comment_event(fake_github), gh, queue)
    [job] = fix_jobs(queue)
    assert (job.repo, job.fix.base_repo, job.fix.clone_url) == (
        "alice/Hello-World",
        REPO,
        "https://github.com/alice/Hello-World.git",
    )


async def test_busy_branch_gets_a_reply_not_a_second_job(gh, fake_github, queue):
    fake_github.add_pull(REPO, 1, head_ref="exp-a", head_sha="a" * 40)
    await dispatch(comment_event(fake_github, delivery="d-1"), gh, queue)
    await dispatch(comment_event(fake_github, delivery="d-2", comment_id=2), gh, queue)
    [reply] = replies(fake_github)
    assert "<!-- fix-and-relaunch:busy -->" in reply and "queued" in reply
    assert len(fix_jobs(queue)) == 1 and len(fake_github.find("POST", "/reactions")) == 2


async def test_replayed_comment_under_a_new_delivery_id_is_ignored(gh, fake_github, queue):
    fake_github.add_pull(REPO, 1, head_ref="exp-a", head_sha="a" * 40)
    await dispatch(comment_event(fake_github, delivery="d-1"), gh, queue)
    calls = len(fake_github.calls)
    await dispatch(comment_event(fake_github, delivery="d-replayed"), gh, queue)
    assert len(fake_github.calls) == calls  # no second 👀, no busy reply
    [job] = fix_jobs(queue)
    assert job.fix.comment_id == 492700400


async def test_closed_pull_request_drops_queued_jobs_and_cleans_up(gh, fake_github, queue):
    other = queue.enqueue(fix_job("other", delivery="x")).job_id
    mine = queue.enqueue(fix_job("changes", delivery="y")).job_id
    cleaned = []

    async def cleanup(repo, branch):
        cleaned.append((repo, branch))

    data = example("pull_request/opened.payload.json", fake_github.url)
    data["action"] = "closed"
    await dispatch(sansio.Event(data, event="pull_request", delivery_id="d"), gh, queue, cleanup=cleanup)
    assert queue.get(mine).status == "cancelled" and queue.get(other).status == "queued"
    assert cleaned == [(REPO, "changes")]
    opened = sansio.Event(
        example("pull_request/opened.payload.json", fake_github.url), event="pull_request", delivery_id="e"
    )
    await dispatch(opened, gh, queue, cleanup=cleanup)
    assert len(cleaned) == 1


def closed_event(fake, branch="changes"):
    data = example("pull_request/opened.payload.json", fake.url)
    data["action"] = "closed"
    data["pull_request"]["head"]["ref"] = branch
    return sansio.Event(data, event="pull_request", delivery_id="closed")


async def test_closed_pull_request_keeps_the_worktree_of_a_running_job(gh, fake_github, queue, caplog):
    running = queue.enqueue(fix_job("changes", delivery="y")).job_id
    queue.claim()
    cleaned = []
    with caplog.at_level(logging.INFO, logger="handlers.github"):
        await dispatch(closed_event(fake_github), gh, queue, cleanup=lambda repo, branch: cleaned.append(branch))
    assert cleaned == [] and queue.cancel_requested(running)
    assert f"job {running} is still running" in caplog.text
    queue.finish(running)
    await dispatch(closed_event(fake_github), gh, queue, cleanup=lambda repo, branch: cleaned.append(branch))
    assert cleaned == ["changes"]


async def test_closed_pull_request_cleans_up_off_the_loop_and_survives_errors(gh, fake_github, queue, caplog):
    import threading

    threads = []

    def cleanup(repo, branch):  # blocking git work
        threads.append(threading.get_ident())
        raise RuntimeError("worktree is dirty")

    with caplog.at_level(logging.INFO, logger="handlers.github"):
        await dispatch(closed_event(fake_github), gh, queue, cleanup=cleanup)
    assert threads and threads[0] != threading.get_ident()
    assert "clean-up of Codertocat/Hello-World#changes failed" in caplog.text and "worktree is dirty" in caplog.text


async def test_installation_events_are_logged(gh, fake_github, queue, caplog):
    data = example("installation/created.payload.json", fake_github.url)
    with caplog.at_level(logging.INFO, logger="handlers.github"):
        await dispatch(sansio.Event(data, event="installation", delivery_id="i"), gh, queue)
    assert "installation created" in caplog.text and str(data["installation"]["id"]) in caplog.text
    assert fake_github.calls == []


# -- reporting ---------------------------------------------------------------------------


async def test_job_comment_is_created_once_then_edited_in_place(gh, fake_github):
    comments_url = f"{fake_github.url}/repos/{REPO}/issues/1/comments"
    marker = job_marker(7)
    first = await GitHubForge(gh).upsert_comment(comments_url, marker, DIAGNOSING.format(marker=marker, branch="exp-a"))
    # a new forge (a resumed job) finds its comment again by the marker; bodies without it get it
    forge = GitHubForge(gh)
    await forge.upsert_comment(comments_url, marker, "<!-- fix-and-relaunch:report -->\n**Fix applied:** lower lr")
    await forge.upsert_comment(comments_url, marker, "<!-- fix-and-relaunch:report -->\n**Verified**: 20 steps")
    assert len(fake_github.find("POST", "/issues/1/comments")) == 1
    assert len(fake_github.find("PATCH", f"/issues/comments/{first['id']}")) == 2
    assert len(fake_github.find("GET", "/issues/1/comments")) == 2  # one lookup per forge, then its cache
    [comment] = fake_github.comments.values()
    assert comment["body"].startswith(marker) and comment["body"].endswith("**Verified**: 20 steps")
    other = await GitHubForge(gh).upsert_comment(comments_url, job_marker(8), "another job")
    assert other["id"] != first["id"] and other["body"] == f"{job_marker(8)}\nanother job"


async def test_check_run_react_and_reply(gh, fake_github):
    forge = GitHubForge(gh)
    await forge.create_check_run(REPO, "c" * 40, "in_progress", title="Relaunched", summary="waiting")
    [created] = fake_github.find("POST", f"/repos/{REPO}/check-runs")
    assert created.body == {
        "name": "fix-and-relaunch",
        "head_sha": "c" * 40,
        "status": "in_progress",
        "output": {"title": "Relaunched", "summary": "waiting"},
    }
    by_url = await forge.create_check_run(
        f"{fake_github.url}/repos/{REPO}", "d" * 40, conclusion="failure", title="Gave up"
    )
    assert by_url["conclusion"] == "failure" and by_url["status"] == "completed"
    await forge.react(f"{fake_github.url}/repos/{REPO}/issues/comments/5/reactions", "rocket")
    await forge.reply(f"{fake_github.url}/repos/{REPO}/issues/1/comments", "hello")
    assert fake_github.find("POST", "/reactions")[0].body == {"content": "rocket"}
    assert replies(fake_github) == ["hello"]
