"""The one git runner: its result, its redacted errors, its time limit; and remote authentication."""

from __future__ import annotations

import base64
import os
import time

import pytest

from bot.core.errors import BadInput, OperationFailed
from bot.repo.git import RemoteAuth, check_branch_name, git


def test_a_result_keeps_stdout_as_written_and_the_exit_code(tmp_path):
    git(tmp_path, "init", "-q")
    assert git(tmp_path, "rev-parse", "--is-inside-work-tree").out == "true\n"
    missing = git(tmp_path, "rev-parse", "--verify", "--quiet", "HEAD", check=False)
    assert missing.code == 1 and not missing.ok and missing.out == ""


def test_bytes_that_are_not_utf8_survive_and_read_as_replacement_characters(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9\n")
    sha = git(tmp_path, "hash-object", "-w", "latin1.txt").out.strip()
    blob = git(tmp_path, "cat-file", "blob", sha)
    assert blob.out.encode("utf-8", "surrogateescape") == b"caf\xe9\n"
    assert blob.text() == "caf\ufffd\n"


def test_a_failure_quotes_git_on_one_line_with_credentials_and_secrets_masked(tmp_path):
    git(tmp_path, "init", "-q")
    with pytest.raises(OperationFailed) as err:
        git(
            tmp_path,
            "--literal-pathspecs",
            "checkout",
            "https://user:pw-123@example.com/x ghs_TOKEN9",
            secrets=("ghs_TOKEN9",),
        )
    message = str(err.value)
    assert message.startswith("git checkout failed: error: pathspec 'https://example.com/x ***'")
    assert "pw-123" not in message and "ghs_TOKEN9" not in message and "\n" not in message


def test_git_messages_are_in_english_whatever_the_locale(tmp_path, monkeypatch):
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    monkeypatch.setenv("LANGUAGE", "de")
    with pytest.raises(OperationFailed, match="not a git repository"):
        git(tmp_path, "rev-parse", "HEAD")


def test_the_environment_given_is_added_to_the_bots(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    out = git(
        tmp_path,
        "config",
        "--get",
        "x.y",
        env={"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "x.y", "GIT_CONFIG_VALUE_0": "from-env"},
    ).out
    assert out == "from-env\n"


def test_git_past_its_time_limit_is_stopped_and_fails(tmp_path):
    git(tmp_path, "init", "-q")
    os.mkfifo(tmp_path / "never-written")  # git blocks opening it for reading
    started = time.monotonic()
    result = git(tmp_path, "hash-object", "never-written", check=False, timeout=0.5)
    assert time.monotonic() - started < 5
    assert result.code < 0 and result.err == "timed out after 0.5 seconds; stopped"
    with pytest.raises(OperationFailed, match=r"^git hash-object failed: timed out after 0.5 seconds"):
        git(tmp_path, "hash-object", "never-written", timeout=0.5)


def test_git_that_cannot_start_is_an_operation_failure(tmp_path):
    with pytest.raises(OperationFailed, match="could not start"):
        git(tmp_path / "missing", "status")


def test_a_token_url_becomes_a_clean_url_and_a_header():
    auth = RemoteAuth.parse("https://x-access-token:ghs_abc@github.com/o/r.git")
    basic = base64.b64encode(b"x-access-token:ghs_abc").decode()
    assert auth.url == "https://github.com/o/r.git"
    assert auth.env == {
        "GIT_CONFIG_COUNT": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_KEY_0": "http.https://github.com/.extraheader",
        "GIT_CONFIG_VALUE_0": f"AUTHORIZATION: basic {basic}",
    }
    assert auth.secrets == ("ghs_abc", basic)
    assert RemoteAuth.parse("git@github.com:o/r.git") == RemoteAuth("git@github.com:o/r.git")
    assert RemoteAuth.parse(None) == RemoteAuth(None)
    with pytest.raises(BadInput):
        RemoteAuth.parse(42)  # type: ignore[arg-type]


def test_branch_names_git_accepts_and_that_stay_in_their_folder():
    assert check_branch_name("team/exp-b") == "team/exp-b"
    for name in ("a..b", "-x", "a/../b", "x.lock", "HEAD"):
        with pytest.raises(BadInput):
            check_branch_name(name)
