"""Worktrees, one per branch, against real git: a bare origin in tmp and a clone of it."""

from __future__ import annotations

import shutil

import pytest

from bot.core.errors import BadInput, OperationFailed
from bot.repo.workspace import Workspace
from tests.support.git_repos import commit_on_origin, git, write_files


def test_worktree_is_created_from_the_remote_branch_and_tracks_it(repo):
    _origin, clone = repo
    path = Workspace(clone).worktree("team/exp-b")
    assert path == (clone / ".worktrees" / "team" / "exp-b").resolve()
    assert "'lr': 0.05" in (path / "src/config.py").read_text()
    assert git(path, "rev-parse", "--abbrev-ref", "HEAD@{upstream}") == "origin/team/exp-b"
    assert git(clone, "status", "--porcelain") == ""  # .worktrees/ is excluded


def test_worktree_is_recreated_after_rm_rf_and_after_worktree_remove(repo):
    _, clone = repo
    ws = Workspace(clone)
    path = ws.worktree("exp-a")
    shutil.rmtree(clone / ".worktrees")
    assert ws.worktree("exp-a") == path and (path / "main.py").exists()
    git(clone, "worktree", "remove", str(path))
    assert ws.worktree("exp-a") == path and (path / "main.py").exists()


def test_worktree_pulls_new_origin_commits(repo):
    origin, clone = repo
    ws = Workspace(clone)
    path = ws.worktree("exp-a")
    sha = commit_on_origin(origin, "exp-a", {"notes.txt": "hello\n"}, "Add notes")
    assert ws.worktree("exp-a", pull=False) == path and not (path / "notes.txt").exists()
    ws.worktree("exp-a")
    assert ws.head("exp-a") == sha and (path / "notes.txt").read_text() == "hello\n"


def test_dirty_worktree_is_refused_and_left_untouched(repo):
    origin, clone = repo
    ws = Workspace(clone)
    path = ws.worktree("exp-a")
    (path / "src/config.py").write_text("edited by a human\n")
    commit_on_origin(origin, "exp-a", {"notes.txt": "x\n"}, "Moved on")
    with pytest.raises(OperationFailed, match=r"dirty.*src/config.py"):
        ws.worktree("exp-a")
    assert (path / "src/config.py").read_text() == "edited by a human\n"
    assert not (path / "notes.txt").exists()


def test_untracked_files_are_not_dirt(repo):
    _, clone = repo
    ws = Workspace(clone)
    path = ws.worktree("exp-a")
    write_files(path, {"wandb/run-1/output.log": "run output\n"})
    assert ws.worktree("exp-a") == path


def test_diverged_worktree_is_refused_and_left_untouched(repo):
    origin, clone = repo
    ws = Workspace(clone)
    path = ws.worktree("exp-a")
    write_files(path, {"local.txt": "mine\n"})
    local = ws.commit("exp-a", ["local.txt"], "Local work")
    commit_on_origin(origin, "exp-a", {"remote.txt": "theirs\n"}, "Remote work")
    with pytest.raises(OperationFailed, match=r"diverged: the bot's worktree has 1 commit.*origin/exp-a has 1 "):
        ws.worktree("exp-a")
    assert ws.head("exp-a") == local and not (path / "remote.txt").exists()


def test_local_commits_ahead_of_origin_are_kept(repo):
    _, clone = repo
    ws = Workspace(clone)
    path = ws.worktree("exp-a")
    write_files(path, {"local.txt": "mine\n"})
    local = ws.commit("exp-a", ["local.txt"], "Local work")
    ws.worktree("exp-a")
    assert ws.head("exp-a") == local


def test_exclude_entry_is_added_once(repo):
    _, clone = repo
    ws = Workspace(clone)
    ws.worktree("exp-a")
    ws.worktree("team/exp-b")
    Workspace(clone / "src").exclude_worktrees()  # any folder of the checkout finds the same repo
    lines = (clone / ".git/info/exclude").read_text().splitlines()
    assert lines.count("/.worktrees/") == 1


@pytest.mark.parametrize(
    "name",
    [
        "../escape",
        "a/../../b",
        "-rf",
        "a..b",
        "has space",
        "HEAD",
        "x@{1}",
        "a/./b",
        "",
        ".hidden",
        "ends.lock",
        "a\\b",
        "tab\tname",
        "/abs",
        "trailing/",
    ],
)
def test_hostile_branch_names_are_rejected(repo, name):
    _, clone = repo
    with pytest.raises(BadInput):
        Workspace(clone).worktree(name)
    assert not (clone.parent / "escape").exists()


def test_unknown_branch_is_bad_input(repo):
    _, clone = repo
    with pytest.raises(BadInput, match="no branch 'nope'"):
        Workspace(clone).worktree("nope")


def test_branch_checked_out_in_the_main_checkout_is_reported(repo):
    _, clone = repo
    git(clone, "checkout", "-q", "exp-a")
    with pytest.raises(OperationFailed, match="exp-a is checked out at"):
        Workspace(clone).worktree("exp-a")


def test_remove_worktree_keeps_the_branch(repo):
    _, clone = repo
    ws = Workspace(clone)
    path = ws.worktree("exp-a")
    (path / "main.py").write_text("changed\n")
    with pytest.raises(OperationFailed, match="dirty"):
        ws.remove_worktree("exp-a")
    git(path, "checkout", "main.py")
    write_files(path, {"wandb/out.log": "x"})
    ws.remove_worktree("exp-a")
    assert not path.exists()
    assert git(clone, "rev-parse", "--verify", "refs/heads/exp-a")
    ws.remove_worktree("exp-a")  # already gone: nothing to do
