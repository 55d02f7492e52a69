"""A user's clone: the bot works in its private clone of it, never on the user's branches,
checkout or index, and brings the user's checkout along afterwards when that is safe. Real git."""

from __future__ import annotations

import pytest

from bot.core.errors import BadInput, OperationFailed
from bot.repo.user_checkout import Sync
from bot.repo.workspace import Workspace
from tests.support.git_repos import commit_all, commit_on_origin, git, remote_refs, write_files


def _status(clone) -> tuple[str, str, str]:
    """Everything of the user's that the bot must not touch: branch, HEAD, status."""
    return (
        git(clone, "branch", "--show-current"),
        git(clone, "rev-parse", "HEAD"),
        git(clone, "status", "--porcelain", "--untracked-files=all"),
    )


def _fix(ws: Workspace, branch: str = "exp-a") -> str:
    path = ws.worktree(branch)
    write_files(path, {"src/train.py": "# fixed\n"})
    ws.commit(branch, ["src/train.py"], "Fix: train")
    ws.push(branch)
    return ws.head(branch)


def test_a_branch_the_user_has_checked_out_and_dirty_is_worked_on_without_touching_it(repo):
    origin, clone = repo
    git(clone, "checkout", "-q", "exp-a")
    write_files(clone, {"src/config.py": "edited by a human\n", "scratch.txt": "mine\n"})
    git(clone, "add", "scratch.txt")
    before = _status(clone)
    user_refs = {k: v for k, v in remote_refs(clone).items() if not k.startswith("refs/remotes/")}

    ws = Workspace.for_checkout(clone)
    path = ws.worktree("exp-a")
    assert path == (clone / ".worktrees" / "exp-a").resolve()
    assert git(path, "branch", "--show-current") == "exp-a", "a script asking git for its branch gets the name"
    sha = _fix(ws)

    assert remote_refs(origin)["refs/heads/exp-a"] == sha
    assert git(clone, "rev-parse", "origin/exp-a") == sha, "the user's remote-tracking branch, as a fetch sets it"
    assert _status(clone) == before
    assert (clone / "src/config.py").read_text() == "edited by a human\n"
    assert {k: v for k, v in remote_refs(clone).items() if not k.startswith("refs/remotes/")} == user_refs
    git(clone, "stash", "-q")
    git(clone, "checkout", "-q", "main")  # and the user may switch branches as they like
    git(clone, "checkout", "-q", "exp-a")  # (the bot's worktree holds no branch of theirs)


def test_the_worktree_starts_from_the_users_commits_not_yet_pushed(repo):
    origin, clone = repo
    git(clone, "checkout", "-q", "exp-a")
    write_files(clone, {"notes.txt": "local\n"})
    local = commit_all(clone, "Local, not pushed")
    ws = Workspace.for_checkout(clone)
    assert ws.is_ancestor(local, "exp-a"), "a run of the user's own commit is the branch's"
    path = ws.worktree("exp-a")
    assert git(path, "rev-parse", "HEAD") == local
    sha = _fix(ws)
    assert git(origin, "rev-parse", "exp-a") == sha and git(origin, "rev-parse", "exp-a~1") == local


def test_a_branch_only_the_user_has_is_worked_on_and_pushed(repo):
    origin, clone = repo
    git(clone, "checkout", "-q", "-b", "exp-new")
    write_files(clone, {"notes.txt": "new\n"})
    commit_all(clone, "A new experiment")
    sha = _fix(Workspace.for_checkout(clone), "exp-new")
    assert git(origin, "rev-parse", "exp-new") == sha


def test_views_that_diverged_are_refused(repo):
    origin, clone = repo
    git(clone, "checkout", "-q", "exp-a")
    write_files(clone, {"notes.txt": "local\n"})
    commit_all(clone, "Local, not pushed")
    commit_on_origin(origin, "exp-a", {"remote.txt": "theirs\n"}, "Remote work")
    with pytest.raises(OperationFailed, match=r"diverged: .* has 1 commit\(s\) that .* lacks, and .* has 1 "):
        Workspace.for_checkout(clone).worktree("exp-a")


def test_new_remote_commits_reach_the_worktree_through_the_users_repository(repo):
    origin, clone = repo
    ws = Workspace.for_checkout(clone)
    path = ws.worktree("exp-a")
    sha = commit_on_origin(origin, "exp-a", {"notes.txt": "hello\n"}, "Add notes")
    ws.worktree("exp-a")
    assert git(path, "rev-parse", "HEAD") == sha and git(clone, "rev-parse", "origin/exp-a") == sha


def test_a_rejected_push_says_so_and_the_fix_replays_on_top(repo):
    origin, clone = repo
    ws = Workspace.for_checkout(clone)
    path = ws.worktree("exp-a")
    write_files(path, {"src/config.py": "lr = 0.01\n"})
    ws.commit("exp-a", ["src/config.py"], "Fix: lower lr")
    theirs = commit_on_origin(origin, "exp-a", {"README.md": "notes\n"}, "Human change")
    from bot.repo.publish import PushRejected

    with pytest.raises(PushRejected):
        ws.push("exp-a")
    assert ws.rebase_onto_remote("exp-a", ["src/config.py"]) is True
    ws.push("exp-a")
    assert git(origin, "rev-parse", "exp-a~1") == theirs


def test_any_folder_of_the_checkout_or_a_bot_worktree_names_the_same_repository(repo, tmp_path):
    from bot.core.settings import Settings
    from bot.loop.repo_context import RepoContext

    _, clone = repo
    settings = Settings(state_dir=tmp_path / "state")
    path = Workspace.for_checkout(clone).worktree("exp-a")
    for where in (clone, clone / "src", path, path / "src"):
        assert RepoContext.open(settings, where).repo == clone.resolve()
    with pytest.raises(BadInput, match="not a git repository"):
        RepoContext.open(settings, tmp_path)


def test_an_old_worktree_in_the_users_repository_is_reported_not_replaced(repo):
    _, clone = repo
    old = (clone / ".worktrees" / "exp-a").resolve()
    git(clone, "worktree", "add", "-q", "--track", "-b", "exp-a", str(old), "origin/exp-a")
    write_files(old, {"wandb/run-1/out.log": "a run's output\n"})
    with pytest.raises(OperationFailed, match="earlier version of the bot.*git worktree prune"):
        Workspace.for_checkout(clone).worktree("exp-a")
    assert (old / "wandb/run-1/out.log").exists()


# -- the user's checkout, after a push -------------------------------------------------------


def test_a_clean_checkout_on_the_branch_is_fast_forwarded(repo):
    _, clone = repo
    git(clone, "checkout", "-q", "exp-a")
    write_files(clone, {"wandb/run-1/out.log": "untracked run output\n"})
    ws = Workspace.for_checkout(clone)
    sha = _fix(ws)
    synced = ws.sync_checkout("exp-a")
    assert synced.sync is Sync.FAST_FORWARDED and synced.checkout == clone.resolve()
    assert git(clone, "rev-parse", "HEAD") == sha and (clone / "src/train.py").read_text() == "# fixed\n"
    assert synced.message() == f"your checkout of exp-a at {clone.resolve()} was fast-forwarded to the fix"
    assert ws.sync_checkout("exp-a").sync is Sync.UP_TO_DATE


def test_a_dirty_checkout_is_left_with_the_command_that_takes_the_fix(repo):
    _, clone = repo
    git(clone, "checkout", "-q", "exp-a")
    write_files(clone, {"src/config.py": "edited by a human\n"})
    before = _status(clone)
    ws = Workspace.for_checkout(clone)
    _fix(ws)
    synced = ws.sync_checkout("exp-a")
    assert synced.sync is Sync.LEFT and synced.command == "git merge --ff-only origin/exp-a"
    assert synced.reason == "uncommitted changes in src/config.py"
    assert _status(clone) == before
    assert synced.message(cwd=clone.parent).endswith(
        f"to take the fix: git -C {clone.resolve()} merge --ff-only origin/exp-a"
    )
    git(clone, "merge", "--ff-only", "origin/exp-a")  # the command works, keeping the user's edit
    assert (clone / "src/train.py").read_text() == "# fixed\n"
    assert (clone / "src/config.py").read_text() == "edited by a human\n"


def test_a_local_branch_checked_out_nowhere_is_moved_and_none_is_made(repo):
    _, clone = repo
    git(clone, "branch", "-q", "exp-a", "origin/exp-a")
    ws = Workspace.for_checkout(clone)
    sha = _fix(ws)
    assert ws.sync_checkout("exp-a").sync is Sync.BRANCH_MOVED
    assert git(clone, "rev-parse", "refs/heads/exp-a") == sha
    git(clone, "branch", "-q", "-D", "exp-a")
    assert ws.sync_checkout("exp-a").sync is Sync.NO_LOCAL_BRANCH
    assert git(clone, "branch", "--list", "exp-a") == ""


def test_local_commits_made_meanwhile_are_never_moved(repo):
    _, clone = repo
    git(clone, "checkout", "-q", "exp-a")
    ws = Workspace.for_checkout(clone)
    _fix(ws)
    write_files(clone, {"later.txt": "meanwhile\n"})
    mine = commit_all(clone, "Meanwhile")
    synced = ws.sync_checkout("exp-a")
    assert synced.sync is Sync.LEFT and synced.command == "git pull --rebase origin exp-a"
    assert git(clone, "rev-parse", "HEAD") == mine


def test_the_users_dirty_checkout_is_found(repo):
    _, clone = repo
    ws = Workspace.for_checkout(clone)
    assert ws.checkout("exp-a") is None
    git(clone, "checkout", "-q", "exp-a")
    assert ws.checkout("exp-a").clean
    write_files(clone, {"src/config.py": "x\n", "new.txt": "untracked\n"})
    git(clone, "mv", "main.py", "run.py")
    found = ws.checkout("exp-a")
    assert found.path == clone.resolve() and sorted(found.uncommitted) == ["run.py", "src/config.py"]
