"""The branches of one repository as the fix loop uses them: one object over the `bot.repo` parts.

    git.py        the one git runner, remote authentication, branch names
    local.py      the repository on disk: root, common git dir, lock, refs
    worktrees.py  one worktree per branch under `<repo>/.worktrees/`, and the safety checks
    history.py    reading: heads, ancestry, files at a ref, the bot's own (and reverted) commits
    publish.py    writing: commit, fetch, fast-forward push, replay, the server's own clone
    private_clone.py  in a user's clone: the bot's own clone, reaching the remote through theirs
    user_checkout.py  afterwards: the user's own checkout of the branch, fast-forwarded when clean

In server mode one clone per repository lives under `state_dir/repos/<owner>/<repo>` with the
same layout (`clone_for_server`). In a user's clone (`Workspace.for_checkout`), the bot works in
its private clone (`.git/fix-and-relaunch.git`), so no branch of the user's is ever checked out
or moved by it, and its worktrees are still the user's `.worktrees/<branch>`; afterwards the
user's checkout is fast-forwarded when it is clean and on the branch (`sync_checkout`).
"""

from __future__ import annotations

from pathlib import Path

from bot.repo.history import Commit, History
from bot.repo.local import LocalRepo
from bot.repo.private_clone import RelayRemote, private_clone
from bot.repo.publish import AuthSource, Publisher, Remote
from bot.repo.user_checkout import Checkout, CheckoutSync, Sync, bring_along, find_checkout
from bot.repo.worktrees import Worktrees


class Workspace:
    """The branches of one repository, each in its own worktree under `<repo>/.worktrees/`.

    `auth_url` (server mode) authenticates fetch and push; see `bot.repo.publish.Remote`.
    Each method hands over to the part that does the work.
    """

    def __init__(self, repo: Path, remote: str = "origin", auth_url: AuthSource = None) -> None:
        local = LocalRepo(repo, remote)
        self._wire(local, Remote(local, auth_url), Worktrees(local), user=None)

    @classmethod
    def for_checkout(cls, repo: Path, remote: str = "origin") -> Workspace:
        """A user's clone: the bot works in its private clone of it and never on the user's
        branches, checkout or index; fetch and push go through the user's repository."""
        user = LocalRepo(repo, remote)
        local = LocalRepo(private_clone(user), remote)
        workspace = cls.__new__(cls)
        workspace._wire(local, RelayRemote(local, user), Worktrees(local, home=user), user=user)
        return workspace

    def _wire(self, local: LocalRepo, remote: Remote, worktrees: Worktrees, user: LocalRepo | None) -> None:
        self.local = local
        self.user = user  # the user's repository, when the bot works in its private clone
        self.remote_repo = remote
        self.worktrees = worktrees
        self.history = History(local, worktrees)
        self.publisher = Publisher(local, worktrees, remote)
        self.remote = local.remote
        self.root = (user or local).root
        self.git_dir = local.git_dir

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

    def set_base_branch(self, branch: str, base: str) -> None:
        self.history.set_base_branch(branch, base)

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

    # -- the user's own checkout ---------------------------------------------------------------

    def checkout(self, branch: str) -> Checkout | None:
        """Where the user has the branch checked out, if anywhere (None outside a user's clone)."""
        return find_checkout(self.user, branch) if self.user is not None else None

    def sync_checkout(self, branch: str) -> CheckoutSync:
        """After a push: bring the user's local branch to the pushed commit when that is a safe
        fast-forward (see `bot.repo.user_checkout`). Outside a user's clone there is no user."""
        if self.user is None:
            return CheckoutSync(Sync.NO_LOCAL_BRANCH, branch)
        pushed = self.local.out("rev-parse", "--verify", "--quiet", self.local.tracking_ref(branch), check=False)
        if not pushed.strip():
            return CheckoutSync(Sync.NO_LOCAL_BRANCH, branch)
        return bring_along(self.user, branch, pushed.strip())

    def rebase_onto_remote(self, branch: str, paths_that_must_be_unchanged: list[str]) -> bool:
        return self.publisher.rebase_onto_remote(branch, paths_that_must_be_unchanged)
