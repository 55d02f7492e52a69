"""Reading a branch's history, and telling the bot's fixes (and their reverts) apart."""

from __future__ import annotations

import pytest

from bot.core.errors import BadInput, OperationFailed
from bot.core.secrets import Redactor
from bot.repo.branch_doc import FixEntry, add_fix_entry
from bot.repo.history import fix_message
from bot.repo.workspace import Workspace
from tests.support.git_repos import config_py, git, make_origin, write_files


def test_reading_helpers(repo):
    _, clone = repo
    ws = Workspace(clone)
    ws.worktree("exp-a")
    main_sha = git(clone, "rev-parse", "origin/main")
    assert ws.base_branch("exp-a") == "main"
    assert ws.base_branch("main") is None
    assert ws.is_ancestor(main_sha, "exp-a")
    assert not ws.is_ancestor(ws.head("exp-a"), "team/exp-b")
    assert not ws.is_ancestor("0" * 40, "exp-a") and not ws.is_ancestor("not-a-commit", "exp-a")
    assert ws.file_at("main", "src/config.py") == config_py()
    assert ws.file_at("team/exp-b", "src/config.py") == config_py(lr=0.05)  # only on origin
    assert ws.file_at("main", "missing.py") is None


def test_base_branch_follows_origin_head(tmp_path):
    _origin, clone = make_origin(tmp_path, branches={"develop": {"x.txt": "1\n"}, "exp": {"y.txt": "2\n"}})
    git(clone, "remote", "set-head", "origin", "develop")
    assert Workspace(clone).base_branch("exp") == "develop"


def test_a_pull_requests_base_comes_before_the_default_branch(tmp_path):
    _origin, clone = make_origin(tmp_path, branches={"exp-a": {"x.txt": "1\n"}})
    git(clone, "checkout", "-q", "-b", "exp-b", "origin/exp-a")
    git(clone, "push", "-q", "origin", "exp-b")
    ws = Workspace(clone)
    ws.set_base_branch("exp-b", "exp-a")
    ws.set_base_branch("exp-c", "gone")  # a base this clone does not have
    ws.set_base_branch("exp-a", "exp-a")
    assert ws.base_branch("exp-b") == "exp-a"
    assert ws.base_branch("exp-c") == "main"
    assert ws.base_branch("exp-a") == "main"
    assert ws.base_branch("main") is None


def test_reverted_bot_fixes(repo):
    _, clone = repo
    ws = Workspace(clone)
    path = ws.worktree("exp-a")
    write_files(path, {"src/config.py": config_py(lr=0.01)})
    ws.commit("exp-a", ["src/config.py"], fix_message("lower lr", "r1", Redactor()))
    write_files(path, {"src/train.py": "# fixed\n"})
    second = ws.commit("exp-a", ["src/train.py"], fix_message("train loop", "r2", Redactor()))
    assert ws.reverted_bot_fixes("exp-a") == []
    git(path, "revert", "--no-edit", second)
    assert ws.reverted_bot_fixes("exp-a") == [second]
    write_files(path, {"src/train.py": "# the human's own version\n"})
    git(path, "commit", "-qam", "Rewrite train.py")
    assert ws.reverted_bot_fixes("exp-a") == [second]  # still known from the revert commit
    write_files(path, {"README.md": "typo fixed\n"})
    human = ws.commit("exp-a", ["README.md"], "Fix: typo")  # titled like the bot's, but a human's
    git(path, "revert", "--no-edit", human)
    assert ws.reverted_bot_fixes("exp-a") == [second]


def test_fix_undone_by_hand_counts_as_reverted(repo):
    _, clone = repo
    ws = Workspace(clone)
    path = ws.worktree("exp-a")
    write_files(path, {"src/config.py": config_py(lr=0.01)})
    entry = FixEntry(1, "nan_loss", "Loss is NaN", "lr too high", "rule:lower-lr", ["src/config.py"], "r1")
    doc = add_fix_entry(path, "exp-a", entry, Redactor())
    fix = ws.commit("exp-a", ["src/config.py", doc], fix_message("lower lr", "r1", Redactor()))
    write_files(path, {"src/config.py": config_py(lr=10.0)})  # a human puts the old lr back
    git(path, "commit", "-qam", "I want lr 10")
    assert ws.reverted_bot_fixes("exp-a") == [fix]


def test_commits_since_lists_the_branchs_new_commits_oldest_first(repo):
    _, clone = repo
    ws = Workspace(clone)
    path = ws.worktree("exp-a")
    base = ws.head("exp-a")
    assert ws.commits_since(base, "exp-a") == []
    shas = []
    for i in (1, 2):
        write_files(path, {f"n{i}.txt": f"{i}\n"})
        shas.append(ws.commit("exp-a", [f"n{i}.txt"], fix_message(f"note {i}", "r1", Redactor())))
    write_files(path, {"n3.txt": "3\n"})
    # A human's, though titled like ours and quoting our trailer (not in its closing block),
    # with a record separator in the text that must not split the listing.
    shas.append(
        ws.commit(
            "exp-a", ["n3.txt"], "Fix: typo\n\nAs the bot says:\nFix-and-relaunch: fixes run r1\n\nodd \x1e bytes"
        )
    )
    listed = [(c.sha, c.subject, c.by_bot) for c in ws.commits_since(base, "exp-a")]
    assert listed == [(shas[0], "Fix: note 1", True), (shas[1], "Fix: note 2", True), (shas[2], "Fix: typo", False)]
    assert [c.sha for c in ws.commits_since(shas[1], "exp-a")] == [shas[2]]
    for unknown in ("0" * 40, "no-such-ref", "--all"):
        with pytest.raises(BadInput):
            ws.commits_since(unknown, "exp-a")


def test_diff_is_what_the_branchs_new_commits_changed(repo):
    _, clone = repo
    ws = Workspace(clone)
    path = ws.worktree("exp-a")
    base = ws.head("exp-a")
    assert ws.diff("exp-a", base) == ""
    write_files(path, {"src/config.py": config_py(lr=0.01)})
    ws.commit("exp-a", ["src/config.py"], fix_message("lower lr", "r1", Redactor()))
    diff = ws.diff("exp-a", base)
    assert diff.startswith("diff --git a/src/config.py b/src/config.py\n")
    assert "-    'lr': 10.0,\n+    'lr': 0.01,\n" in diff
    assert diff == git(path, "diff", base, "HEAD") + "\n"
    with pytest.raises(BadInput):
        ws.diff("exp-a", "--output=/tmp/x")


def test_changed_paths_between_two_commits(repo):
    _, clone = repo
    ws = Workspace(clone)
    path = ws.worktree("exp-a")
    base = ws.head("exp-a")
    write_files(path, {"src/config.py": config_py(lr=0.01), "with space.txt": "x\n"})
    first = ws.commit("exp-a", ["src/config.py", "with space.txt"], fix_message("lower lr", "r1", Redactor()))
    (path / "requirements.txt").unlink()
    tip = ws.commit("exp-a", ["requirements.txt"], fix_message("drop requirements", "r1", Redactor()))
    assert ws.changed_paths("exp-a", base, tip) == ["requirements.txt", "src/config.py", "with space.txt"]
    assert ws.changed_paths("exp-a", first, tip) == ["requirements.txt"]
    assert ws.changed_paths("exp-a", tip, tip) == []
    with pytest.raises(BadInput):
        ws.changed_paths("exp-a", "-p", tip)


def test_diff_and_changed_paths_need_the_branchs_worktree(repo):
    _, clone = repo
    ws = Workspace(clone)
    head = git(clone, "rev-parse", "origin/exp-a")
    with pytest.raises(OperationFailed, match="no worktree"):
        ws.diff("exp-a", head)
    with pytest.raises(OperationFailed, match="no worktree"):
        ws.changed_paths("exp-a", head, head)
