"""The model's read-only look-ups against hostile arguments: they stay inside the worktree,
never show .git, denied paths or secret files, read a bounded amount of any file, and redact."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bot.core.secrets import Redactor
from bot.fixers.llm.tools import MAX_ANSWER_CHARS, MAX_SCAN_BYTES, Lookups

SECRET = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / ".git/config").write_text('[remote "origin"]\n\turl = https://x:token@github.com/a/b\n')
    (root / ".github").mkdir()
    (root / ".github/fix-and-relaunch.yml").write_text("launch: {command: python train.py}\n")
    (root / "src/train.py").write_text("".join(f"line {i}\n" for i in range(1, 501)))
    (root / "config.yaml").write_text(f"lr: 0.1\ntoken: {SECRET}\n")
    (root / ".env").write_text("WANDB_API_KEY=abc\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (outside / "notes.txt").write_text("-----BEGIN OPENSSH PRIVATE KEY----- (a copy)\n")
    (root / "link_out").symlink_to(outside / "id_rsa")
    (root / "dir_out").symlink_to(outside)
    (root / "git_link").symlink_to(root / ".git/config")
    return root


@pytest.fixture
def lookups(repo: Path) -> Lookups:
    return Lookups(repo, denied=(".github/**",), redactor=Redactor([SECRET]))


@pytest.mark.parametrize(
    "path, why",
    [
        ("../outside/id_rsa", "goes up"),
        ("src/../../outside/id_rsa", "goes up"),
        ("/etc/passwd", "absolute"),
        ("/proc/self/environ", "absolute"),
        (".git/config", "inside .git"),
        ("src/../.git/config", "goes up"),
        ("link_out", "outside the repository"),
        ("dir_out/notes.txt", "outside the repository"),
        ("dir_out/id_rsa", "denied path"),
        ("git_link", "denied path"),
        (".github/fix-and-relaunch.yml", "denied path"),
        (".env", "denied path"),
        ("src\\..\\..\\outside", "forward-slash"),
        ("nope.py", "does not exist"),
        ("src", "not a file"),
        (7, "must be a string"),
    ],
)
def test_read_file_refuses_paths_outside_what_may_be_read(lookups, path, why):
    result = lookups.call("read_file", {"path": path})
    assert result.is_error and why in result.text
    assert "BEGIN OPENSSH" not in result.text and "token@" not in result.text


@pytest.mark.parametrize("path", ["..", "/", ".git", "dir_out", "src/../..", ".github"])
def test_list_dir_refuses_folders_outside_the_worktree(lookups, path):
    result = lookups.call("list_dir", {"path": path})
    assert result.is_error


def test_list_dir_hides_git_and_denied_entries(lookups):
    result = lookups.call("list_dir", {"path": "."})
    names = result.text.splitlines()
    assert "src/" in names and "config.yaml" in names
    assert ".git" not in names and ".git/" not in names and ".env" not in names and ".github/" not in names


def test_read_file_returns_numbered_exact_lines(lookups):
    result = lookups.call("read_file", {"path": "src/train.py", "start": 10, "end": 12})
    assert not result.is_error
    assert result.text.splitlines()[1:] == ["    10\tline 10", "    11\tline 11", "    12\tline 12"]


def test_read_file_with_odd_ranges_stays_bounded(lookups):
    huge = lookups.call("read_file", {"path": "src/train.py", "start": -5, "end": 10**12})
    assert not huge.is_error and len(huge.text) <= MAX_ANSWER_CHARS + 100
    past = lookups.call("read_file", {"path": "src/train.py", "start": 10_000})
    assert "no lines from 10000" in past.text
    typed = lookups.call("read_file", {"path": "src/train.py", "start": "1; rm -rf /", "end": True})
    assert not typed.is_error and "     1\tline 1" in typed.text


def test_a_one_gigabyte_file_is_read_only_up_to_the_cap(repo, lookups):
    big = repo / "data.txt"
    with big.open("wb") as handle:  # sparse: 1 GB on paper, no disk used
        handle.write(b"first line\n")
        handle.truncate(1024**3)
    started = time.monotonic()
    result = lookups.call("read_file", {"path": "data.txt", "start": 1, "end": 3})
    assert time.monotonic() - started < 5
    assert len(result.text) <= MAX_ANSWER_CHARS + 100
    assert "binary" in result.text or f"first {MAX_SCAN_BYTES} bytes" in result.text
    grep = lookups.call("grep", {"pattern": "first line"})  # grep skips files over its size limit
    assert "data.txt" not in grep.text


def test_a_huge_text_line_is_cut(repo, lookups):
    (repo / "wide.txt").write_text("x" * 5_000_000 + "\n")
    result = lookups.call("read_file", {"path": "wide.txt"})
    assert len(result.text) <= MAX_ANSWER_CHARS + 100


def test_output_is_redacted(lookups):
    read = lookups.call("read_file", {"path": "config.yaml"})
    assert SECRET not in read.text and "[REDACTED]" in read.text
    grep = lookups.call("grep", {"pattern": "token"})
    assert SECRET not in grep.text and "config.yaml:2:" in grep.text


def test_grep_never_searches_git_denied_or_linked_files(lookups):
    for pattern in ("token@", "WANDB_API_KEY", "BEGIN OPENSSH", "python train.py"):
        result = lookups.call("grep", {"pattern": pattern})
        assert result.text.startswith("no match"), (pattern, result.text)


def test_grep_refuses_catastrophic_patterns_and_takes_text_that_is_no_regex(lookups):
    slow = lookups.call("grep", {"pattern": "(a+)+$"})
    assert slow.is_error and "nested quantifiers" in slow.text
    assert lookups.call("grep", {"pattern": "x" * 500}).is_error
    literal = lookups.call("grep", {"pattern": "line 1("})  # not a valid regex: searched as text
    assert not literal.is_error


def test_grep_glob_cannot_reach_outside(lookups):
    result = lookups.call("grep", {"pattern": "OPENSSH", "glob": "../**"})
    assert result.text.startswith("no match")


def test_unknown_tool_and_bad_input_are_answers_not_crashes(lookups):
    assert lookups.call("write_file", {"path": "x"}).is_error
    assert lookups.call("read_file", ["src/train.py"]).is_error
    assert lookups.call("read_file", {"path": "src/train.py\0.txt"}).is_error


def test_the_root_itself_through_a_symlinked_worktree(tmp_path, repo):
    alias = tmp_path / "alias"
    os.symlink(repo, alias)
    result = Lookups(alias).call("read_file", {"path": "src/train.py", "start": 1, "end": 1})
    assert not result.is_error and "line 1" in result.text
