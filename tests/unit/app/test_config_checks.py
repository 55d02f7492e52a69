"""Organisation defaults (`_extends`) and the repo config's check run: a `pull_request` delivery to
the real webhook app, a worker that reads the file at the head commit (and the file it extends)
through the App from the local fake GitHub, and the check run it posts."""

from __future__ import annotations

import json

import pytest

import handlers
from bot.app.jobs import JobKind
from bot.app.server import make_app
from bot.repo import config as repo_config
from bot.repo.config import Base, ConfigError, Extends
from tests.support.fake_github import example, signed
from tests.support.waiting import until

REPO, PR = "Codertocat/Hello-World", 2
SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"  # the head of GitHub's pull_request example
PATH = repo_config.CONFIG_PATH
ORG_DEFAULTS = """launch:
  backend: slurm
  slurm:
    partition: gpu
fix:
  max_attempts: 2
"""


async def never(job, **kwargs):
    raise AssertionError(f"no fix job expected, got {job}")


@pytest.fixture
async def client(aiohttp_client, settings, queue):
    app = make_app(settings, queue=queue, router=handlers.router, wandb_handler=handlers.wandb.handle, executor=never)
    return await aiohttp_client(app)


async def open_pr(client, fake, action: str = "opened", delivery: str = "d-pr") -> None:
    body = json.dumps({**example("pull_request/opened.payload.json", fake.url), "action": action}).encode()
    resp = await client.post("/webhooks/github", data=body, headers=signed(body, "pull_request", delivery))
    assert resp.status == 200, await resp.text()


async def finished_checks(queue) -> list:
    await until(
        lambda: [
            j for j in queue.jobs() if j.kind == JobKind.CONFIG_CHECK and j.status != "queued" and j.status != "running"
        ],
        what="the config check",
    )
    return [j for j in queue.jobs() if j.kind == JobKind.CONFIG_CHECK]


async def test_a_pr_editing_the_config_gets_a_check_run_with_its_problems_and_its_defaults(client, fake_github, queue):
    fake_github.pull_files[(REPO, PR)] = [{"filename": PATH, "status": "modified"}, {"filename": "train.py"}]
    fake_github.contents[(REPO, SHA, PATH)] = "_extends: .github\nverify:\n  min_steps: 0\nfix:\n  max_atempts: 3\n"
    fake_github.contents[("Codertocat/.github", "", PATH)] = "launch:\n  backend: kubernetes\n"
    await open_pr(client, fake_github)

    [job] = await finished_checks(queue)
    assert job.status == "done", job.error
    [call] = fake_github.find("POST", f"/repos/{REPO}/check-runs")
    run = call.body
    assert run["name"] == "fix-and-relaunch config" and run["head_sha"] == SHA and run["conclusion"] == "failure"
    assert run["output"]["title"] == f"3 problems in {PATH}"
    summary = run["output"]["summary"]
    assert "Codertocat/.github:.github/fix-and-relaunch.yml" in summary and "launch.backend" in summary
    assert [(a["start_line"], a["message"].split("'")[1]) for a in run["output"]["annotations"]] == [
        (3, "verify.min_steps"),
        (5, "fix.max_atempts"),
    ]
    reads = [c.path for c in fake_github.find("GET") if "/contents/" in c.path]
    assert reads == [f"/repos/{REPO}/contents/{PATH}", f"/repos/Codertocat/.github/contents/{PATH}"]


async def test_a_valid_config_with_org_defaults_passes(client, fake_github, queue):
    fake_github.pull_files[(REPO, PR)] = [{"filename": PATH, "status": "added"}]
    fake_github.contents[(REPO, SHA, PATH)] = "_extends: .github\nfix:\n  max_attempts: 5\n"
    fake_github.contents[("Codertocat/.github", "", PATH)] = ORG_DEFAULTS
    await open_pr(client, fake_github, action="synchronize")
    await finished_checks(queue)
    [call] = fake_github.find("POST", "/check-runs")
    assert call.body["conclusion"] == "success" and call.body["output"]["title"] == "valid"
    assert call.body["output"]["annotations"] == []


async def test_an_extends_the_app_cannot_read_is_a_problem(client, fake_github, queue):
    fake_github.pull_files[(REPO, PR)] = [{"filename": PATH, "status": "modified"}]
    fake_github.contents[(REPO, SHA, PATH)] = "_extends: other-org/defaults:ml/bot.yml\n"
    await open_pr(client, fake_github, action="reopened")
    await finished_checks(queue)
    [call] = fake_github.find("POST", "/check-runs")
    assert call.body["conclusion"] == "failure"
    assert "other-org/defaults:ml/bot.yml, which the App cannot read" in call.body["output"]["summary"]


async def test_a_pr_that_does_not_edit_the_config_gets_no_check_run(client, fake_github, queue):
    fake_github.pull_files[(REPO, PR)] = [{"filename": "train.py", "status": "modified"}]
    await open_pr(client, fake_github)
    [job] = await finished_checks(queue)
    assert job.status == "done" and fake_github.find("POST", "/check-runs") == []
    assert not [c for c in fake_github.find("GET") if "/contents/" in c.path]


async def test_the_request_path_only_queues_the_check(aiohttp_client, settings, fake_github, queue):
    app = make_app(
        settings, queue=queue, router=handlers.router, wandb_handler=handlers.wandb.handle, comment_workers=0
    )
    client = await aiohttp_client(app)
    await open_pr(client, fake_github)
    await open_pr(client, fake_github, delivery="d-again")  # the same head: one check waits
    assert queue.received() == 2 and fake_github.calls == []  # no worker here admits them
    queue.admit()
    [job] = queue.jobs()
    assert job.kind == JobKind.CONFIG_CHECK and job.payload.head_sha == SHA and fake_github.calls == []


# -- the merge itself ---------------------------------------------------------------------


def test_the_repo_keys_override_the_org_defaults_mapping_by_mapping():
    own = "_extends: .github\nlaunch:\n  slurm:\n    time: '01:00:00'\nfix:\n  max_attempts: 4\n"
    config = repo_config.parse(own, base=Base(ORG_DEFAULTS, "acme/.github:" + PATH))
    assert config["launch"]["backend"] == "slurm"
    assert config["launch"]["slurm"] == {"partition": "gpu", "time": "01:00:00"}
    assert config["fix"]["max_attempts"] == 4
    assert "_extends" not in config and "extends" not in config
    assert (
        repo_config.parse(own)["launch"]["backend"] == repo_config.DEFAULTS["launch"]["backend"]
    )  # no base: own keys only


def test_the_base_problems_name_the_base_and_a_bad_extends_is_one_problem():
    with pytest.raises(ConfigError) as err:
        repo_config.parse("_extends: .github\n", base=Base("verify:\n  min_steps: -1\n", "acme/.github:x.yml"))
    assert [str(p) for p in err.value.problems] == [
        "acme/.github:x.yml:2: 'verify.min_steps' must be at least 1, got int -1"
    ]
    [problem] = repo_config.check("_extends: [a, b]\n")
    assert problem.path == "_extends" and problem.line == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (".github", Extends("acme/.github")),
        ("defaults", Extends("acme/defaults")),
        ("other/defaults", Extends("other/defaults")),
        ("other/defaults:ml/bot.yml", Extends("other/defaults", "ml/bot.yml")),
        ("not a repo", None),
    ],
)
def test_what_extends_names(value, expected):
    assert repo_config.extends_of(f"_extends: {value}\n", "acme") == expected
