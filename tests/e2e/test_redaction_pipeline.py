"""Issue 12's secrets case end to end, through `fix --json`: tokens in the model's answer (which
the PR comment escapes for markdown) and in the run's log never reach the comment, the commit,
the branch doc, the JSON output or the prompt; the evidence beside them survives everywhere.
Real git with a bare origin, real launches, the real Anthropic client against a local server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import experiment
from tests.support.cli import run as run_cli
from tests.support.fake_anthropic import serving, tool_answer
from tests.support.git_repos import git
from tests.support.secrets_corpus import GHP, GITHUB_PAT, JWT, SLACK_BOT, URL_SLASH_PASSWORD, readable

pytestmark = pytest.mark.slow  # real git, a real `serve` process, real launches

CONFIGURED = "Gh-hook_Q4m7/Zt2Kp9+ws-e2e"
EVIDENCE = ("pad_token = '</s>'", "dataset_key=imagenet-2012-train-v2", "cache_key: 5d41402abc4b2a76b9719d911017c592")
SECRETS = (GHP, GITHUB_PAT, JWT, SLACK_BOT, URL_SLASH_PASSWORD, CONFIGURED)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return experiment.build(tmp_path_factory.mktemp("exp"))


@pytest.fixture
def anthropic(monkeypatch):
    with serving(monkeypatch) as fake:
        monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", CONFIGURED)  # a secret of the bot's settings
        monkeypatch.setenv("SERVICE_TOKEN", SLACK_BOT)  # the job prints it: a leak to contain
        yield fake


def test_secrets_in_the_models_answer_and_the_log_reach_no_output_and_evidence_survives(capsys, repo, anthropic):
    origin, clone = repo
    branch = "exp-llm-secret"
    code, out, _ = run_cli(capsys, "launch", "--repo", str(clone), "--branch", branch, "--wait", "--json")
    log = Path(json.loads(out)["log_path"]).read_text()
    assert code == 1 and SLACK_BOT in log, "the run really leaked a token into its log"
    anthropic.script(
        tool_answer(
            {
                "root_cause": (
                    f"len() is called on an int. Not the cause: {EVIDENCE[0]}, {EVIDENCE[1]}, {EVIDENCE[2]}; "
                    f"the log shows {SLACK_BOT}, a session {JWT}, postgres://admin:{URL_SLASH_PASSWORD}@db:5432/x "
                    f"and the key {CONFIGURED}."
                ),
                "explanation": f"Use the row count. (Also seen: {GITHUB_PAT}.)",
                "description": f"use the row count ({GHP})",
                "edits": [
                    {"path": "src/train.py", "search": "    width = len(5)\n", "replace": "    width = len(rows)\n"}
                ],
            }
        )
    )

    code, out, err = run_cli(capsys, "fix", "--repo", str(clone), "--branch", branch, "--json")

    result = json.loads(out)
    assert code == 0 and result["action"] == "patched", result.get("comment")
    doc = git(origin, "show", f"{branch}:docs/{branch}.md")
    history = git(origin, "log", "-p", "main.." + branch)
    outputs = {
        "stdout": out,
        "stderr": err,
        "comment": result["comment"],
        "commit and doc": history,
        "prompt": "\n".join(r.text for r in anthropic.requests),
    }
    for name, text in outputs.items():
        for secret in SECRETS:
            assert secret not in text and secret not in readable(text), f"{secret[:12]}… reached the {name}"
    assert git(origin, "log", "-1", "--format=%s", branch) == "Fix: use the row count ([REDACTED])"
    for name, text in {"comment": result["comment"], "branch doc": doc, "commit": history}.items():
        for evidence in EVIDENCE:
            assert evidence in " ".join(readable(text).split()), f"{evidence!r} was lost from the {name}"
