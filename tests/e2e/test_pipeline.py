"""The fix pipeline end to end, through the command line: real git with a bare origin, real
subprocess launches, real offline W&B runs (sample repo), the real Anthropic client against a
local Messages API. Nothing of the bot is mocked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.cli.main import main as cli
from bot.demo import sample_repo
from tests.support import experiment
from tests.support.cli import run as run_cli
from tests.support.fake_anthropic import overloaded, serving, tool_answer
from tests.support.git_repos import commit_on_origin, git, remote_refs


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return experiment.build(tmp_path_factory.mktemp("exp"))


def launch_and_fail(capsys, clone: Path, branch: str) -> dict:
    code, out, _ = run_cli(capsys, "launch", "--repo", str(clone), "--branch", branch, "--wait", "--json")
    assert code == 1, out
    record = json.loads(out)
    assert record["state"] == "failed"
    return record


def fix(capsys, clone: Path, branch: str, *extra: str) -> tuple[int, dict]:
    code, out, err = run_cli(capsys, "fix", "--repo", str(clone), "--branch", branch, "--json", *extra)
    return code, json.loads(out)


def on_origin(origin: Path, branch: str, path: str) -> str:
    return git(origin, "show", f"{branch}:{path}")


@pytest.mark.parametrize(
    "branch,category,fixer,path,expected",
    [
        ("exp-oom", "oom", "rule:lower-batch-size", "src/config.py", '"batch_size": 64,'),
        ("exp-data", "data_not_found", "rule:closest-path", "src/config.py", '"data_path": "data/train.csv",'),
        ("exp-config", "config_error", "rule:config-default", "src/config.py", '"warmup_steps": 2,'),
        ("exp-import", "import_error", "rule:add-requirement", "requirements.txt", "toyaug"),
        ("exp-localimport", "import_error", "rule:fix-local-import", "src/train.py", "from src.model import build"),
    ],
)
def test_rule_fix_is_pushed_relaunched_and_verified(capsys, repo, branch, category, fixer, path, expected):
    origin, clone = repo
    failed = launch_and_fail(capsys, clone, branch)
    before = remote_refs(origin)

    code, result = fix(capsys, clone, branch)

    assert code == 0, result.get("comment")
    assert (result["action"], result["category"], result["verified"]) == ("patched", category, True)
    assert result["attempts"][0]["fixer"] == fixer
    assert result["attempts"][0]["failed_run"] == failed["id"]
    assert expected in on_origin(origin, branch, path)
    assert result["files_changed"] == sorted([path, f"docs/{branch}.md"])
    assert git(origin, "log", "-1", "--format=%s", branch).startswith("Fix: ")
    assert "## Fixes" in on_origin(origin, branch, f"docs/{branch}.md")
    assert failed["id"] in on_origin(origin, branch, f"docs/{branch}.md")
    assert result["new_run"]["state"] in ("running", "finished")
    assert result["comment"].startswith("<!-- fix-and-relaunch:report -->\n**Fix applied:**")
    assert "Re-launching" in result["comment"] or "Verified" in result["comment"]
    after = remote_refs(origin)
    changed = {ref for ref in after if after[ref] != before.get(ref)}
    assert changed == {f"refs/heads/{branch}"}, "only the fixed branch moved"


def test_unfixable_code_error_gives_up_and_pushes_nothing(capsys, repo):
    origin, clone = repo
    launch_and_fail(capsys, clone, "exp-bug")
    before = remote_refs(origin)

    code, result = fix(capsys, clone, "exp-bug")

    assert code == 1
    assert (result["action"], result["category"], result["verified"]) == ("gave_up", "code_error", False)
    assert "no rule fixes" in result["reason"]
    assert result["comment"].startswith("<!-- fix-and-relaunch:report -->\n**Gave up:**")
    assert "TypeError" in result["comment"]
    assert remote_refs(origin) == before


def test_dry_run_shows_the_patch_and_changes_nothing(capsys, repo):
    origin, clone = repo
    launch_and_fail(capsys, clone, "exp-dry")
    before = remote_refs(origin)

    code, result = fix(capsys, clone, "exp-dry", "--dry-run")

    assert code == 0
    assert (result["action"], result["category"]) == ("none", "import_error")
    assert "-from src.modle import build" in result["patch"]
    assert "+from src.model import build" in result["patch"]
    assert "Dry run" in result["comment"]
    assert remote_refs(origin) == before
    worktree = clone / ".worktrees" / "exp-dry"
    assert git(worktree, "status", "--porcelain", "--untracked-files=no") == ""


def wait_for_log(clone: Path, capsys, branch: str, text: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, out, _ = run_cli(capsys, "runs", "--repo", str(clone), "--branch", branch, "--json")
        run = json.loads(out)[0]
        from bot.store.runs import StateStore

        record = StateStore.open(Path(os.environ["FIX_AND_RELAUNCH_STATE_DIR"])).get_run(run["id"])
        if text in Path(record.log_path).read_text():
            return record.to_json()
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never reached the log")


def test_preempted_run_is_relaunched_without_a_code_change(capsys, repo):
    origin, clone = repo
    code, out, _ = run_cli(capsys, "launch", "--repo", str(clone), "--branch", "exp-preempt", "--json")
    assert code == 0
    record = wait_for_log(clone, capsys, "exp-preempt", "step 1 ")
    os.killpg(record["handle"]["pgid"], signal.SIGTERM)  # the cluster preempts the job
    deadline = time.monotonic() + 30
    while (
        json.loads(run_cli(capsys, "runs", "--repo", str(clone), "--branch", "exp-preempt", "--json")[1])[0]["state"]
        == "running"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    before = remote_refs(origin)

    code, result = fix(capsys, clone, "exp-preempt")

    assert code == 0, result["comment"]
    assert (result["action"], result["category"], result["verified"]) == ("relaunched", "infra", True)
    assert result["commits"] == [] and result["attempts"][0]["fixer"] == "relaunch"
    assert result["new_run"]["state"] == "finished"
    assert "Relaunched without a code change" in result["comment"]
    assert remote_refs(origin) == before


def test_second_attempt_when_the_first_fix_was_not_enough(capsys, tmp_path):
    clone = sample_repo.build(tmp_path, python=sys.executable)  # logs real offline W&B runs
    # main has since taken the branch's lr 25.0: there is no lower base value to restore, so
    # the rule lowers it a decade at a time.
    (clone / "src/config.py").write_text(sample_repo.CONFIG_PY.format(lr="25.0"))
    git(clone, "commit", "-q", "-am", "Adopt the experiment's learning rate")
    git(clone, "push", "-q", "origin", "main")
    launch_and_fail(capsys, clone, sample_repo.BRANCH)

    code, result = fix(capsys, clone, sample_repo.BRANCH)

    assert code == 0, result["comment"]
    assert (result["action"], result["category"], result["verified"]) == ("patched", "nan_loss", True)
    first, second = result["attempts"]
    assert first["fixer"] == second["fixer"] == "rule:lower-lr"
    assert "diverging" in first["problem"]  # lr 2.5 still runs away: seen in early metrics
    assert second["problem"] is None and second["run"]["steps"] >= 20
    assert len(result["commits"]) == 2
    config = git(tmp_path / "origin.git", "show", f"{sample_repo.BRANCH}:src/config.py")
    assert '"lr": 0.25,  # learning rate' in config


def test_demo_command_ends_on_a_verified_run(capsys, tmp_path):
    code = cli(["demo", "--dir", str(tmp_path / "demo")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Outcome: patched, verified: True" in out
    # The sample branch raised main's lr 0.25 a hundredfold: main's value is restored.
    assert "**Fix applied:** restore learning rate 0.25 from main in src/config.py" in out


def test_resumed_job_never_commits_pushes_or_launches_twice(capsys, repo):
    from bot.core.settings import Settings
    from bot.loop.journal import StepLog
    from bot.loop.model import FixRequest
    from bot.loop.pipeline import Pipeline
    from bot.loop.repo_context import RepoContext

    origin, clone = repo
    launch_and_fail(capsys, clone, "exp-resume")
    done: dict = {}

    def interrupt(stage: str, body: str) -> None:
        if stage == "fix_pushed":
            raise KeyboardInterrupt("the bot was stopped")

    ctx = RepoContext.open(Settings.from_env(), clone)
    steps = StepLog(load=lambda: dict(done), save=done.__setitem__)
    with pytest.raises(KeyboardInterrupt):
        Pipeline(ctx, steps=steps, reporter=interrupt, poll=0.2).run(FixRequest(branch="exp-resume"))
    pushed = git(origin, "rev-parse", "exp-resume")

    ctx = RepoContext.open(Settings.from_env(), clone)
    steps = StepLog(load=lambda: dict(done), save=done.__setitem__)
    outcome = Pipeline(ctx, steps=steps, poll=0.2).run(FixRequest(branch="exp-resume"))

    assert outcome.verified and outcome.action == "patched"
    assert git(origin, "rev-parse", "exp-resume") == pushed, "no second push"
    fixes = git(origin, "log", "--format=%s", "main..exp-resume").splitlines()
    assert [s for s in fixes if s.startswith("Fix: ")] == ["Fix: " + fixes[0][5:]]
    launches = ctx.state.list_runs(repo=ctx.key, branch="exp-resume")
    assert len(launches) == 2, "the failed run and exactly one relaunch"


def test_a_human_change_to_the_file_since_the_failed_run_is_tested_before_fixing(capsys, repo):
    origin, clone = repo
    failed = launch_and_fail(capsys, clone, "exp-human-config")
    from tests.support.experiment import CONFIG_PY  # batch size 96: the human's try, not enough

    commit_on_origin(
        origin,
        "exp-human-config",
        {"src/config.py": CONFIG_PY.format(batch_size=96, data_path="data/train.csv")},
        "Try batch 96",
    )

    code, result = fix(capsys, clone, "exp-human-config")

    assert code == 0, result["comment"]
    fixers = [a["fixer"] for a in result["attempts"]]
    assert fixers == ["relaunch:newer-code", "rule:lower-batch-size"], result["attempts"]
    assert result["attempts"][0]["failed_run"] == failed["id"]
    assert '"batch_size": 48,' in on_origin(origin, "exp-human-config", "src/config.py"), "halved the human's 96"
    assert result["verified"] is True


def test_a_human_change_elsewhere_does_not_delay_the_fix(capsys, repo):
    origin, clone = repo
    launch_and_fail(capsys, clone, "exp-human-readme")
    commit_on_origin(origin, "exp-human-readme", {"NOTES.md": "batch 128 crashed\n"}, "Notes on the crash")

    code, result = fix(capsys, clone, "exp-human-readme")

    assert code == 0, result["comment"]
    assert [a["fixer"] for a in result["attempts"]] == ["rule:lower-batch-size"]
    assert '"batch_size": 64,' in on_origin(origin, "exp-human-readme", "src/config.py")


def test_the_same_failure_after_a_fix_with_no_progress_stops_the_loop(capsys, repo):
    origin, clone = repo
    launch_and_fail(capsys, clone, "exp-oom-stuck")

    code, result = fix(capsys, clone, "exp-oom-stuck")

    assert code == 1 and result["action"] == "gave_up"
    assert "the same failure came back after `rule:lower-batch-size` with no progress" in result["reason"]
    assert [a["fixer"] for a in result["attempts"]] == ["rule:lower-batch-size"]
    fixes = git(origin, "log", "--format=%s", "main..exp-oom-stuck").splitlines()
    assert sum(s.startswith("Fix: ") for s in fixes) == 1, "no second halving after the first did nothing"


def test_delete_failed_run_removes_the_relaunched_run_once_the_fix_is_verified(capsys, repo):
    _, clone = repo
    failed = launch_and_fail(capsys, clone, "exp-cleanup")
    from bot.store.runs import StateStore

    state = StateStore.open(Path(os.environ["FIX_AND_RELAUNCH_STATE_DIR"]))
    assert state.get_run(failed["id"]) is not None and Path(failed["log_path"]).exists()

    code, result = fix(capsys, clone, "exp-cleanup")

    assert code == 0 and result["verified"] is True
    assert state.get_run(failed["id"]) is None and not Path(failed["log_path"]).exists()
    assert [r.id for r in state.list_runs(branch="exp-cleanup")] == [result["new_run"]["id"]]


def test_a_human_revert_of_a_bot_fix_stops_automatic_fixing(capsys, repo):
    origin, clone = repo
    launch_and_fail(capsys, clone, "exp-revert")
    code, result = fix(capsys, clone, "exp-revert")
    assert code == 0 and result["action"] == "patched"
    scratch = origin.parent / "revert-scratch"
    git(origin.parent, "clone", "-q", "-b", "exp-revert", str(origin), str(scratch))
    git(scratch, "revert", "--no-edit", result["commits"][0])
    git(scratch, "push", "-q", "origin", "exp-revert")
    launch_and_fail(capsys, clone, "exp-revert")
    before = remote_refs(origin)

    code, result = fix(capsys, clone, "exp-revert")

    assert code == 1 and result["action"] == "gave_up"
    assert "reverted" in result["reason"]
    assert remote_refs(origin) == before


# -- the LLM fixer, against a local server speaking the Messages API -----------------

SECRET_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


@pytest.fixture
def anthropic(monkeypatch):
    with serving(monkeypatch) as fake:
        monkeypatch.setenv("SERVICE_TOKEN", SECRET_TOKEN)  # the job prints it: a leak to contain
        yield fake


GOOD = {
    "root_cause": "len() is called on an int.",
    "explanation": "Use the row count.",
    "description": "use the row count for the width",
    "edits": [{"path": "src/train.py", "search": "    width = len(5)\n", "replace": "    width = len(rows)\n"}],
}
DENIED = {
    **GOOD,
    "edits": [{"path": ".github/fix-and-relaunch.yml", "search": "min_steps: 3", "replace": "min_steps: 0"}],
}
NO_MATCH = {**GOOD, "edits": [{"path": "src/train.py", "search": "width = len(6)", "replace": "width = 1"}]}
MALFORMED = {"root_cause": "?", "edits": "not a list"}


@pytest.mark.parametrize(
    "case,first,error_text",
    [
        ("good", None, None),
        ("denied", DENIED, "denied"),
        ("nomatch", NO_MATCH, "not found"),
        ("malformed", MALFORMED, "edits"),
    ],
)
def test_llm_patch_is_validated_repaired_and_pushed(capsys, repo, anthropic, case, first, error_text):
    origin, clone = repo
    branch = f"exp-llm-{case}"
    launch_and_fail(capsys, clone, branch)
    anthropic.script(*([tool_answer(first)] if first else []), tool_answer(GOOD))

    code, result = fix(capsys, clone, branch)

    assert code == 0, result["comment"]
    assert (result["action"], result["category"], result["verified"]) == ("patched", "code_error", True)
    assert result["attempts"][0]["fixer"].startswith("llm:")
    assert "width = len(rows)" in on_origin(origin, branch, "src/train.py")
    assert on_origin(origin, branch, ".github/fix-and-relaunch.yml") == experiment.repo_config().strip()
    assert "| Tokens |" in result["comment"]
    assert len(anthropic.requests) == (2 if first else 1)
    if error_text:
        assert error_text in anthropic.requests[-1].text


def test_an_llm_fix_waits_for_a_run_of_code_changed_since_the_failure(capsys, repo, anthropic):
    origin, clone = repo
    launch_and_fail(capsys, clone, "exp-llm-human")
    commit_on_origin(
        origin,
        "exp-llm-human",
        {"src/model.py": experiment.MODEL_PY + "# tidied\n", "NOTES.md": "width bug?\n"},
        "Tidy the model",
    )
    anthropic.script(tool_answer(GOOD))

    code, result = fix(capsys, clone, "exp-llm-human")

    assert code == 0, result["comment"]
    fixers = [a["fixer"] for a in result["attempts"]]
    assert fixers[0] == "relaunch:newer-code" and fixers[1].startswith("llm:") and len(fixers) == 2
    assert len(anthropic.requests) == 1, "the LLM saw only the failure of the current code"
    assert "width = len(rows)" in on_origin(origin, "exp-llm-human", "src/train.py")


def test_llm_overloaded_gives_up_cleanly(capsys, repo, anthropic):
    origin, clone = repo
    launch_and_fail(capsys, clone, "exp-llm-overloaded")
    anthropic.always(overloaded())
    before = remote_refs(origin)

    code, result = fix(capsys, clone, "exp-llm-overloaded")

    assert code == 1 and result["action"] == "gave_up"
    assert "overloaded" in result["reason"].lower()
    assert len(anthropic.requests) == 3  # the first try and the client's two retries
    assert remote_refs(origin) == before


def test_no_secret_from_the_log_reaches_a_prompt_a_comment_or_a_commit(capsys, repo, anthropic):
    origin, clone = repo
    failed = launch_and_fail(capsys, clone, "exp-llm-secret")
    assert SECRET_TOKEN in Path(failed["log_path"]).read_text(), "the run really leaked it"
    anthropic.script(tool_answer(GOOD))

    code, result = fix(capsys, clone, "exp-llm-secret")

    assert code == 0
    assert all(SECRET_TOKEN not in r.text for r in anthropic.requests)
    assert "debug env" in anthropic.requests[0].text, "the log line was sent, redacted"
    assert SECRET_TOKEN not in result["comment"]
    assert SECRET_TOKEN not in git(origin, "log", "-p", "exp-llm-secret")


def test_a_cancelled_job_stops_before_changing_anything(capsys, repo):
    from bot.core.settings import Settings
    from bot.loop.model import FixRequest
    from bot.loop.pipeline import Pipeline
    from bot.loop.repo_context import RepoContext

    origin, clone = repo
    launch_and_fail(capsys, clone, "exp-cancel")
    before = remote_refs(origin)
    ctx = RepoContext.open(Settings.from_env(), clone)

    outcome = Pipeline(ctx, cancelled=lambda: True).run(FixRequest(branch="exp-cancel"))

    assert outcome.action == "gave_up" and "cancelled" in outcome.reason
    assert remote_refs(origin) == before
    assert len(ctx.state.list_runs(repo=ctx.key, branch="exp-cancel")) == 1, "nothing relaunched"


def test_a_pushed_fix_that_never_ran_is_relaunched_not_fixed_again(capsys, repo):
    origin, clone = repo
    launch_and_fail(capsys, clone, "exp-norelaunch")
    code, first = fix(capsys, clone, "exp-norelaunch", "--no-relaunch")
    assert code == 0 and first["action"] == "patched" and first["new_run"] is None

    code, second = fix(capsys, clone, "exp-norelaunch")

    assert code == 0, second["comment"]
    assert (second["action"], second["verified"], second["commits"]) == ("relaunched", True, [])
    assert "has not run yet" in second["comment"]
    fixes = git(origin, "log", "--format=%s", "main..exp-norelaunch").splitlines()
    assert sum(s.startswith("Fix: ") for s in fixes) == 1, "the batch size was halved once"


def test_a_second_fix_of_a_branch_is_refused_while_one_runs(capsys, repo):
    from bot.cli.commands.fix import fix_lock
    from bot.core.settings import Settings
    from bot.loop.repo_context import RepoContext

    origin, clone = repo
    settings = Settings.from_env()
    before = remote_refs(origin)
    with fix_lock(settings, RepoContext.open(settings, clone), "exp-oom"):  # as a running `fix` holds it
        code, out, err = run_cli(capsys, "fix", "--repo", str(clone), "--branch", "exp-oom")
    assert (code, out) == (1, "") and "another fix of branch 'exp-oom' is running" in err
    assert remote_refs(origin) == before


def test_an_interrupted_fix_command_resumes_without_a_second_launch(capsys, repo, tmp_path):
    origin, clone = repo
    launch_and_fail(capsys, clone, "exp-cli-resume")
    from bot.store.runs import StateStore

    state = StateStore.open(Path(os.environ["FIX_AND_RELAUNCH_STATE_DIR"]))
    bot = subprocess.Popen(
        [sys.executable, "-m", "bot", "fix", "--repo", str(clone), "--branch", "exp-cli-resume"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    # Relaunched (its job started, so its log exists): now watching it.
    while len(runs := state.list_runs(branch="exp-cli-resume")) < 2 or not Path(runs[0].log_path).exists():
        assert time.monotonic() < deadline and bot.poll() is None, "the fix never relaunched"
        time.sleep(0.05)
    bot.kill()
    bot.wait(timeout=10)

    code, result = fix(capsys, clone, "exp-cli-resume")

    assert code == 0, result["comment"]
    assert (result["action"], result["verified"]) == ("patched", True)
    assert len(state.list_runs(branch="exp-cli-resume")) == 2, "the failed run and one relaunch"
    fixes = git(origin, "log", "--format=%s", "main..exp-cli-resume").splitlines()
    assert sum(s.startswith("Fix: ") for s in fixes) == 1


def test_llm_that_never_gets_it_right_gives_up_after_two_repairs(capsys, repo, anthropic):
    origin, clone = repo
    launch_and_fail(capsys, clone, "exp-llm-hopeless")
    anthropic.always(tool_answer(NO_MATCH))
    before = remote_refs(origin)

    code, result = fix(capsys, clone, "exp-llm-hopeless")

    assert code == 1 and result["action"] == "gave_up"
    assert len(anthropic.requests) == 3, "one proposal and two repair rounds"
    assert "the LLM fixer gave up" in result["reason"] and " tokens, $" in result["reason"]
    assert remote_refs(origin) == before
    worktree = clone / ".worktrees" / "exp-llm-hopeless"
    assert git(worktree, "status", "--porcelain", "--untracked-files=no") == "", "nothing half-applied"


def test_a_fix_committed_but_never_pushed_is_pushed_next_time_not_made_twice(capsys, repo):
    origin, clone = repo
    launch_and_fail(capsys, clone, "exp-unpushed")
    hook = origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'the remote is read-only today' >&2\nexit 1\n")
    hook.chmod(0o755)
    try:
        code, out, err = run_cli(capsys, "fix", "--repo", str(clone), "--branch", "exp-unpushed")
    finally:
        hook.unlink()
    assert code == 1 and "read-only" in err
    assert "Fix: " not in git(origin, "log", "-1", "--format=%s", "exp-unpushed")

    code, result = fix(capsys, clone, "exp-unpushed")

    assert code == 0, result["comment"]
    assert (result["action"], result["verified"]) == ("patched", True)
    assert '"batch_size": 64,' in on_origin(origin, "exp-unpushed", "src/config.py"), "halved once, not twice"
    fixes = git(origin, "log", "--format=%s", "main..exp-unpushed").splitlines()
    assert sum(s.startswith("Fix: ") for s in fixes) == 1
