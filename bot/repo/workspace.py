"""The branches of one repository as the fix loop uses them: one object over the `bot.repo` parts.

    git.py        the one git runner, remote authentication, branch names
    local.py      the repository on disk: root, common git dir, lock, refs
    worktrees.py  one worktree per branch under `<repo>/.worktrees/`, and the safety checks
    history.py    reading: heads, ancestry, files at a ref, the bot's own (and reverted) commits
    publish.py    writing: commit, fetch, fast-forward push, replay, the server's own clone

In server mode one clone per repository lives under `state_dir/repos/<owner>/<repo>` with the
same layout (`clone_for_server`).
"""

from __future__ import annotations

from pathlib import Path

from bot.repo.history import Commit, History
from bot.repo.local import LocalRepo
from bot.repo.publish import AuthSource, Publisher, Remote
from bot.repo.worktrees import Worktrees


class Workspace:
    """The branches of one repository, each in its own worktree under `<repo>/.worktrees/`.

    `auth_url` (server mode) authenticates fetch and push; see `bot.repo.publish.Remote`.
    Each method hands over to the part that does the work.
    """

    def __init__(self, repo: Path, remote: str = "origin", auth_url: AuthSource = None) -> None:
        self.local = LocalRepo(repo, remote)
        self.remote_repo = Remote(self.local, auth_url)
        self.worktrees = Worktrees(self.local)
        self.history = History(self.local, self.worktrees)
        self.publisher = Publisher(self.local, self.worktrees, self.remote_repo)
        self.remote = remote
        self.root = self.local.root
        self.git_dir = self.local.git_dir

    # -- worktrees ---------------------------------------------------------------------------

    def worktree_path(self, branch: str) -> Path:
        return self.worktrees.path(branch)

    def worktree(self, branch: str, *, pull: bool = True) -> Path:
        """The branch's worktree: created (or recreated) if missing, fast-forwarded if `pull`."""
        self.worktrees.path(branch)  # a bad name is refused before anything is written or fetched
        self.worktrees.exclude()
        if pull or not self.local.has_local(branch):
            self.remote_repo.fetch(branch)
        return self.worktrees.open(branch, fast_forward=pull)

    def remove_worktree(self, branch: str) -> None:
        """Remove the branch's worktree (e.g. its PR closed); the branch itself is kept.

        Refused when tracked files have uncommitted changes; untracked run outputs go with it.
        """
        self.worktrees.remove(branch)

    def exclude_worktrees(self) -> None:
        self.worktrees.exclude()

    # -- reading -----------------------------------------------------------------------------

    def head(self, branch: str) -> str:
        return self.history.head(branch)

    def is_ancestor(self, commit: str, branch: str) -> bool:
        return self.history.is_ancestor(commit, branch)

    def base_branch(self, branch: str) -> str | None:
        return self.history.base_branch(branch)

    def file_at(self, ref: str, path: str) -> str | None:
        return self.history.file_at(ref, path)

    def reverted_bot_fixes(self, branch: str) -> list[str]:
        return self.history.reverted_bot_fixes(branch)

    def files_changed(self, sha: str, branch: str) -> list[str]:
        return self.history.files_changed(sha, branch)

    def on_remote(self, sha: str, branch: str) -> bool:
        return self.history.on_remote(sha, branch)

    def commits_since(self, base: str, branch: str) -> list[Commit]:
        return self.history.commits_since(base, branch)

    def diff(self, branch: str, base: str) -> str:
        return self.history.diff(branch, base)

    def changed_paths(self, branch: str, base: str, tip: str) -> list[str]:
        return self.history.changed_paths(branch, base, tip)

    # -- writing -----------------------------------------------------------------------------

    def commit(self, branch: str, paths: list[str], message: str, author: str | None = None) -> str:
        return self.publisher.commit(branch, paths, message, author)

    def fetch(self, branch: str) -> bool:
        return self.remote_repo.fetch(branch)

    def push(self, branch: str) -> None:
        self.remote_repo.push(branch)

    def discard_unpushed(self, branch: str) -> list[str]:
        return self.publisher.discard_unpushed(branch)

    def rebase_onto_remote(self, branch: str, paths_that_must_be_unchanged: list[str]) -> bool:
        return self.publisher.rebase_onto_remote(branch, paths_that_must_be_unchanged)
