"""The GitHub App end to end with serve's settings: the sandbox is on by default, so the relaunch
the fix ends in runs in it, and a branch whose own config switches it off is refused on the PR."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.app.jobs import JobKind, JobStatus
from bot.launchers.sandbox import serve_settings
from bot.loop.repo_context import RepoContext
from tests.e2e.test_server import REPO, failed_run_on_bot_clone, run_one_job, world  # noqa: F401 (world: a fixture)
from tests.support import experiment
from tests.support.git_repos import commit_on_origin, git
from tests.support.sandbox import require_sandbox


async def test_the_servers_fix_relaunches_the_job_in_the_sandbox(aiohttp_client, fake_github, world):  # noqa: F811
    require_sandbox()
    settings, origin = world
    settings = serve_settings(settings)
    failed_run_on_bot_clone(settings, "exp-oom")
    fake_github.add_pull(REPO, 1, head_ref="exp-oom", head_sha=git(origin, "rev-parse", "exp-oom"))

    queue = await run_one_job(aiohttp_client, fake_github, settings)

    assert queue.jobs("done") and not queue.jobs("failed")
    assert "Verified" in fake_github.find("PATCH")[-1].body["body"]
    ctx = RepoContext.open(settings, settings.state_dir / "repos" / REPO)
    runs = ctx.state.list_runs(repo=ctx.key, branch="exp-oom")
    assert len(runs) == 2
    for run in runs:
        assert Path(run.log_path).read_text().startswith("fix-and-relaunch: running in the sandbox"), run.id


async def test_a_branch_switching_the_sandbox_off_is_told_so_on_the_pr(aiohttp_client, fake_github, world):  # noqa: F811
    require_sandbox()
    settings, origin = world
    settings = serve_settings(settings)
    failed_run_on_bot_clone(settings, "exp-oom")
    config = yaml.safe_load(experiment.repo_config())
    config["launch"]["sandbox"] = "off"
    sha = commit_on_origin(origin, "exp-oom", {".github/fix-and-relaunch.yml": yaml.safe_dump(config)}, "No sandbox")
    fake_github.add_pull(REPO, 1, head_ref="exp-oom", head_sha=sha)

    queue = await run_one_job(aiohttp_client, fake_github, settings)

    fix_jobs = [job for job in queue.jobs() if job.kind == JobKind.FIX]  # the comment's own job is done
    assert [job.status for job in fix_jobs] == [JobStatus.FAILED]
    bodies = [c.body.get("body", "") for c in fake_github.find("PATCH")] + [
        c.body.get("output", {}).get("summary", "") for c in fake_github.find("POST", "/check-runs")
    ]
    assert any("launch.sandbox: off is not allowed here" in body for body in bodies), bodies


async def test_org_defaults_the_branch_extends_apply_to_its_fix_job(aiohttp_client, fake_github, world):  # noqa: F811
    # The organisation's .github repository switches the sandbox off; the branch's config extends it
    # and sets the rest itself: the fix job reads the merge (and refuses, as for the branch's own `off`).
    require_sandbox()
    settings, origin = world
    settings = serve_settings(settings)
    failed_run_on_bot_clone(settings, "exp-oom")
    own = "_extends: .github\n" + experiment.repo_config()
    sha = commit_on_origin(origin, "exp-oom", {".github/fix-and-relaunch.yml": own}, "Org defaults")
    fake_github.add_pull(REPO, 1, head_ref="exp-oom", head_sha=sha)
    fake_github.contents[(REPO, "exp-oom", ".github/fix-and-relaunch.yml")] = own
    fake_github.contents[("Codertocat/.github", "", ".github/fix-and-relaunch.yml")] = "launch:\n  sandbox: off\n"

    queue = await run_one_job(aiohttp_client, fake_github, settings)

    fix_jobs = [job for job in queue.jobs() if job.kind == JobKind.FIX]
    assert [job.status for job in fix_jobs] == [JobStatus.FAILED]
    bodies = [c.body.get("body", "") for c in fake_github.find("PATCH")] + [
        c.body.get("output", {}).get("summary", "") for c in fake_github.find("POST", "/check-runs")
    ]
    assert any("launch.sandbox: off is not allowed here" in body for body in bodies), bodies
