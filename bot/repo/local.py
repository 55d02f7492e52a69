"""One repository on disk, as the other `bot.repo` modules see it: its main worktree, its common
git dir, the remote's name, the lock its writers share, and how a branch name becomes a ref."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

from bot.core.errors import BadInput
from bot.core.locks import exclusive
from bot.repo.git import GitResult, check_branch_name, git

LOCK_NAME = "fix-and-relaunch.lock"  # in the common git dir


class LocalRepo:
    """The repository that `repo` (its main checkout, a worktree, or any folder inside) belongs to."""

    def __init__(self, repo: Path, remote: str = "origin") -> None:
        self.remote = remote
        self.root = _main_worktree(Path(repo))
        common = Path(self.out("rev-parse", "--git-common-dir").strip())
        self.git_dir = common if common.is_absolute() else (self.root / common).resolve()

    def run(self, *args: str, check: bool = True) -> GitResult:
        """git in the main worktree."""
        return git(self.root, *args, check=check)

    def out(self, *args: str, check: bool = True) -> str:
        """git's stdout, in the main worktree."""
        return self.run(*args, check=check).out

    def lock(self) -> AbstractContextManager[None]:
        # Jobs on two branches of one server clone run side by side; git commands that
        # write shared refs or worktree metadata take turns.
        return exclusive(self.git_dir / LOCK_NAME)

    def find_ref(self, name: str) -> str | None:
        """`refs/heads/<name>`, else `refs/remotes/<remote>/<name>`, whichever exists first."""
        for ref in (f"refs/heads/{name}", f"refs/remotes/{self.remote}/{name}"):
            if self.out("rev-parse", "--verify", "--quiet", ref, check=False).strip():
                return ref
        return None

    def ref(self, branch: str) -> str:
        """The branch's ref, local or remote-tracking; BadInput when it is in neither."""
        check_branch_name(branch)
        ref = self.find_ref(branch)
        if ref is None:
            raise BadInput(f"no branch {branch!r} here or on {self.remote}")
        return ref

    def has_local(self, branch: str) -> bool:
        return bool(self.out("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False).strip())

    def tracking_ref(self, branch: str) -> str:
        """`refs/remotes/<remote>/<branch>`: the remote branch as last fetched."""
        return f"refs/remotes/{self.remote}/{branch}"


def _main_worktree(repo: Path) -> Path:
    if not repo.is_dir():
        raise BadInput(f"not a directory: {repo}")
    result = git(repo, "worktree", "list", "--porcelain", check=False)
    if not result.ok:
        raise BadInput(f"not a git repository: {repo}")
    first = result.out.split("\n", 1)[0]
    return Path(first[len("worktree ") :]).resolve() if first.startswith("worktree ") else repo.resolve()
