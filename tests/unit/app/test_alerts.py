"""W&B alerts in the worker: from an alert to fix jobs through the fake GitHub."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging

import aiohttp
import pytest

import handlers
from bot.app.alerts import git_host, repo_from_remote, resolve_wandb_alert
from bot.app.github_auth import GitHubApp
from bot.app.jobs import AlertJob
from bot.app.server import make_app
from tests.support.fake_github import WANDB_SECRET
from tests.support.waiting import until

REPO = "Codertocat/Hello-World"
SHA_A, SHA_B, SHA_C = "a" * 40, "b" * 40, "c" * 40


webhook_app = functools.partial(make_app, router=handlers.router, wandb_handler=handlers.wandb.handle)


def alert(run_path=None) -> AlertJob:
    return AlertJob(entity="team", project="proj", run_path=run_path)


def run(run_id, state="failed", commit=SHA_A, remote=f"https://github.com/{REPO}.git", **config):
    return {
        "id": run_id,
        "path": f"team/proj/{run_id}",
        "state": state,
        "commit": commit,
        "remote": remote,
        "config": config,
    }


@pytest.mark.parametrize(
    "remote, expected",
    [
        ("https://github.com/o/r.git", ("github.com", "o/r")),
        ("https://x-access-token:ghs_secret@github.com/o/r", ("github.com", "o/r")),
        ("git@github.com:o/r.git", ("github.com", "o/r")),
        ("ssh://git@ghe.example.com:2222/o/r.git", ("ghe.example.com", "o/r")),
        ("/home/me/exp", None),
        ("", None),
        (None, None),
    ],
)
def test_repo_from_remote(remote, expected):
    assert repo_from_remote(remote) == expected


@pytest.mark.parametrize(
    "api_url, host",
    [
        ("https://api.github.com", "github.com"),
        ("https://ghe.example.com/api/v3", "ghe.example.com"),
        ("https://GHE.example.com/api/v3/", "ghe.example.com"),
        ("https://api.octo.ghe.com", "octo.ghe.com"),
        ("http://127.0.0.1:8123", "127.0.0.1"),
    ],
)
def test_git_host_of_the_github_the_app_talks_to(api_url, host):
    assert git_host(api_url) == host


@pytest.fixture
async def gh_factory(settings):
    async with aiohttp.ClientSession() as session:
        yield GitHubApp(settings, session).for_repo


async def test_alert_maps_runs_to_branches_and_prs_and_dedupes(fake_github, gh_factory, queue, caplog):
    fake_github.add_pull(REPO, 5, head_ref="exp-a", head_sha=SHA_A)
    fake_github.add_pull(REPO, 6, head_ref="exp-b", head_sha=SHA_B)
    fake_github.add_pull(REPO, 2, head_ref="exp-b", head_sha="f" * 40, state="closed")
    fake_github.commit_pulls = {SHA_A: [5], SHA_B: [2, 6]}
    runs = [
        run("r1", branch="exp-a"),  # branch from config, PR from its commit
        run("r2", commit=SHA_B),  # branch from the PR of its commit
        run("r3", state="finished", branch="exp-c"),  # not failed
        run("r4", remote="/home/me/exp", branch="x"),  # cannot place: no remote
        run("r5", remote="https://github.com/else/where.git", branch="x"),  # app not installed there
        run("r6", commit=SHA_C),  # no branch, no PR
        run("r7", state="crashed", commit=SHA_C, branch="exp-d"),  # branch known, no PR: not a PR branch
    ]
    lookups = []

    def runs_lookup(entity, project):
        lookups.append((entity, project))
        return runs

    with caplog.at_level(logging.INFO, logger="bot.app.alerts"):
        fixes = await resolve_wandb_alert(
            alert(), runs_lookup=runs_lookup, gh_factory=gh_factory, jobs=queue, github_api_url=fake_github.url
        )
    assert lookups == [("team", "proj")]
    by_run = {f.fix.run_id: f.fix for f in fixes}
    assert sorted(by_run) == ["r1", "r2"]
    assert (by_run["r1"].branch, by_run["r1"].pr) == ("exp-a", 5)
    assert (by_run["r2"].branch, by_run["r2"].pr) == ("exp-b", 6)
    assert by_run["r2"].comments_url == f"{fake_github.url}/repos/{REPO}/issues/6/comments"
    assert by_run["r1"].installation_id == 1 and by_run["r1"].repo == REPO
    assert by_run["r1"].run_path == "team/proj/r1" and by_run["r1"].head_sha == SHA_A
    assert {f.status for f in fixes} == {"queued"} and sorted(f.id for f in fixes) == [1, 2]
    assert {j.branch for j in queue.jobs("queued")} == {"exp-a", "exp-b"}
    for skipped in ("r4", "r5", "r6", "r7"):
        assert f"team/proj/{skipped}" in caplog.text
    # no remote will never change; the app may be installed and a PR opened later
    assert [queue.seen_run(f"team/proj/{r}") for r in ("r4", "r5", "r6", "r7")] == [True, False, False, False]
    assert [c.path for c in fake_github.find("GET", "/pulls") if "commits" in c.path] == [
        f"/repos/{REPO}/commits/{SHA_A}/pulls",
        f"/repos/{REPO}/commits/{SHA_B}/pulls",
        f"/repos/{REPO}/commits/{SHA_C}/pulls",
        f"/repos/{REPO}/commits/{SHA_C}/pulls",
    ]
    assert fake_github.find("GET", f"/repos/{REPO}/pulls")[-1].query == {"state": "open", "head": "Codertocat:exp-d"}

    # The same alert again (W&B retries, or another run fails later): handled runs are not redone.
    calls_before = len(fake_github.calls)
    again = await resolve_wandb_alert(
        alert(), runs_lookup=runs_lookup, gh_factory=gh_factory, jobs=queue, github_api_url=fake_github.url
    )
    assert again == [] and len(queue.jobs()) == 2
    handled = {"r1", "r2"}
    assert not any(f"commits/{SHA_A}" in c.path for c in fake_github.calls[calls_before:])
    assert handled <= {j.fix.run_id for j in queue.jobs()}


async def test_runs_on_another_host_are_skipped_and_the_clone_url_comes_from_github(
    fake_github, gh_factory, queue, caplog
):
    """A run's remote is written by whoever ran it: the token must never go to the host it names."""
    fake_github.add_pull(REPO, 5, head_ref="exp-a", head_sha=SHA_A)
    fake_github.add_pull(REPO, 6, head_ref="exp-b", head_sha=SHA_B)
    fake_github.add_pull(REPO, 7, head_ref="exp-d", head_sha=SHA_C)
    fake_github.commit_pulls = {SHA_A: [5], SHA_B: [6], SHA_C: [7]}
    local = fake_github.url.split("://", 1)[1]
    runs = [
        run("evil", commit=SHA_A, remote=f"https://evil.example/{REPO}.git"),
        run("evil-ssh", commit=SHA_A, remote=f"git@evil.example:{REPO}.git"),
        run("evil-no-pr", commit="e" * 40, remote=f"https://evil.example/{REPO}.git", branch="exp-z"),
        run("ssh", commit=SHA_B, remote=f"git@github.com:{REPO}.git"),  # GitHub's own clone host
        run("local", commit=SHA_C, remote=f"http://{local}/{REPO}.git"),  # the API's host
    ]
    with caplog.at_level(logging.INFO, logger="bot.app.alerts"):
        fixes = await resolve_wandb_alert(
            alert(), runs_lookup=lambda e, p: runs, gh_factory=gh_factory, jobs=queue, github_api_url=fake_github.url
        )
    assert sorted(f.fix.run_id for f in fixes) == ["local", "ssh"]
    assert all(queue.seen_run(r["path"]) for r in runs)  # a foreign host is a permanent reason
    assert {f.fix.clone_url for f in fixes} == {f"https://github.com/{REPO}.git"}
    assert "team/proj/evil: its remote is on evil.example" in caplog.text
    assert "team/proj/evil-ssh: its remote is on evil.example" in caplog.text
    assert "team/proj/evil-no-pr: its remote is on evil.example" in caplog.text
    assert [j.fix.clone_url for j in queue.jobs()] == [f"https://github.com/{REPO}.git"] * 2
    assert fake_github.find("GET", f"/repos/{REPO}")


async def test_only_pushable_pr_branches_are_fixed(fake_github, gh_factory, queue, caplog):
    """An alert job is as authorized as a comment: an open PR's head, not main, not an unpushable fork."""
    shas = {name: str(i) * 40 for i, name in enumerate(("develop", "main", "fork", "open-fork", "ok"))}
    fake_github.default_branches[REPO] = "develop"
    fake_github.add_pull(REPO, 10, head_ref="develop", head_sha=shas["develop"])  # the default branch
    fake_github.add_pull(
        REPO, 11, head_ref="main", head_sha=shas["main"], head_repo="alice/Hello-World", maintainer_can_modify=True
    )  # the PR's base
    fake_github.add_pull(REPO, 12, head_ref="exp-f", head_sha=shas["fork"], head_repo="bob/Hello-World")
    fake_github.add_pull(
        REPO,
        13,
        head_ref="exp-o",
        head_sha=shas["open-fork"],
        head_repo="carol/Hello-World",
        maintainer_can_modify=True,
    )
    fake_github.add_pull(REPO, 14, head_ref="exp-ok", head_sha=shas["ok"])
    fake_github.commit_pulls = {sha: [10 + i] for i, sha in enumerate(shas.values())}
    runs = [run(name, commit=sha) for name, sha in shas.items()]
    runs += [
        run("no-pr", commit="9" * 40, branch="exp-x"),  # a branch without a PR
        run("main-by-config", commit="9" * 40, branch="main"),  # main itself
        run("wrong-branch", commit=shas["ok"], branch="exp-other"),
    ]  # the PR's head is another branch
    with caplog.at_level(logging.INFO, logger="bot.app.alerts"):
        fixes = await resolve_wandb_alert(
            alert(), runs_lookup=lambda e, p: runs, gh_factory=gh_factory, jobs=queue, github_api_url=fake_github.url
        )
    by_run = {f.fix.run_id: f.fix for f in fixes}
    assert sorted(by_run) == ["ok", "open-fork"]
    assert by_run["ok"].comments_url == f"{fake_github.url}/repos/{REPO}/issues/14/comments"
    assert by_run["ok"].pr_url == f"{fake_github.url}/repos/{REPO}/pulls/14" and by_run["ok"].pr == 14
    fork = by_run["open-fork"]
    assert (fork.repo, fork.base_repo, fork.clone_url, fork.branch) == (
        "carol/Hello-World",
        REPO,
        "https://github.com/carol/Hello-World.git",
        "exp-o",
    )
    assert "team/proj/develop: develop is the default or base branch" in caplog.text
    assert "team/proj/main: main is the default or base branch" in caplog.text
    assert "team/proj/fork: PR #12 comes from bob:exp-f, which the app may not push to" in caplog.text
    for name in ("no-pr", "main-by-config", "wrong-branch"):
        assert f"team/proj/{name}: no open PR" in caplog.text and "only fixes PR branches" in caplog.text
    assert {r["id"] for r in runs if queue.seen_run(r["path"])} == {"ok", "open-fork", "develop", "main"}


async def test_async_lookup_and_a_new_failure_on_a_busy_branch(fake_github, gh_factory, queue):
    fake_github.add_pull(REPO, 5, head_ref="exp-a", head_sha=SHA_A)
    fake_github.commit_pulls = {SHA_A: [5]}

    async def runs_lookup(entity, project):
        return [run("r1", branch="exp-a"), run("r2", branch="exp-a")]

    fixes = await resolve_wandb_alert(
        alert("team/proj/r2"),
        runs_lookup=runs_lookup,
        gh_factory=gh_factory,
        jobs=queue,
        github_api_url=fake_github.url,
    )
    assert [f.fix.run_id for f in fixes] == ["r1"]  # r2 is on the same branch: "busy", not a second job
    assert queue.seen_run("team/proj/r1") and not queue.seen_run("team/proj/r2")  # r2 waits for the next alert

    again = await resolve_wandb_alert(
        alert(), runs_lookup=runs_lookup, gh_factory=gh_factory, jobs=queue, github_api_url=fake_github.url
    )
    assert again == [] and not queue.seen_run("team/proj/r2")  # still busy
    queue.finish(queue.claim().id)
    later = await resolve_wandb_alert(
        alert(), runs_lookup=runs_lookup, gh_factory=gh_factory, jobs=queue, github_api_url=fake_github.url
    )
    assert [f.fix.run_id for f in later] == ["r2"] and queue.seen_run("team/proj/r2")


async def test_server_worker_resolves_alerts_into_fix_jobs(aiohttp_client, settings, queue, fake_github):
    fake_github.add_pull(REPO, 5, head_ref="exp-a", head_sha=SHA_A)
    fake_github.commit_pulls = {SHA_A: [5]}
    executed = []

    async def executor(job, *, github_app, **kwargs):
        executed.append(job)

    app = webhook_app(settings, queue=queue, executor=executor, runs_lookup=lambda e, p: [run("r1", branch="exp-a")])
    client = await aiohttp_client(app)
    body = json.dumps({"event_type": "RUN_FAILED", "entity": "team", "project": "proj"}).encode()
    headers = {
        "Authorization": f"Bearer {WANDB_SECRET}",
        "X-Wandb-Signature": hmac.new(WANDB_SECRET.encode(), body, hashlib.sha256).hexdigest(),
    }
    assert (await client.post("/webhooks/wandb", data=body, headers=headers)).status == 200
    await until(lambda: executed, what="the fix job")
    [fix] = executed
    assert fix.kind == "fix" and fix.fix.run_path == "team/proj/r1" and fix.fix.pr == 5
    assert [j.status for j in queue.jobs()][0] == "done"
