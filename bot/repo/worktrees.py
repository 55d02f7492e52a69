"""One worktree per branch, under `<repo>/.worktrees/<branch>` (a branch `a/b` is the nested
folder `.worktrees/a/b`); `.worktrees/` is listed in `.git/info/exclude` so it is never committed.

A dirty worktree (uncommitted changes to tracked files) or a diverged branch is reported
(OperationFailed), never reset; untracked files (run outputs such as `wandb/`) are not "dirty".
"""

from __future__ import annotations

from pathlib import Path

from bot.core.errors import BadInput, OperationFailed
from bot.repo.git import check_branch_name, git
from bot.repo.local import LocalRepo

WORKTREES_DIR = ".worktrees"
EXCLUDE_LINE = "/.worktrees/"


class Worktrees:
    """The branches' worktrees of one repository: where they are, making and removing them, and
    the checks that keep a human's work safe. Fetching is the caller's (see `Workspace.worktree`)."""

    def __init__(self, repo: LocalRepo) -> None:
        self.repo = repo

    def path(self, branch: str) -> Path:
        """Where the branch's worktree is (or would be); BadInput for a name that leaves it."""
        check_branch_name(branch)
        base = (self.repo.root / WORKTREES_DIR).resolve()
        path = (base / branch).resolve()
        if base not in path.parents:
            raise BadInput(f"invalid branch name: {branch!r} (leaves {WORKTREES_DIR}/)")
        return path

    def open(self, branch: str, *, fast_forward: bool) -> Path:
        """The branch's worktree, created (or recreated) if missing, checked to be on the branch
        and clean, then fast-forwarded to its upstream if asked."""
        path = self.path(branch)
        if not self.is_worktree(path):
            with self.repo.lock():
                self._add(branch, path)
        self.check_on_branch(branch, path)
        self.check_clean(branch, path)
        if fast_forward:
            self._fast_forward(branch, path)
        return path

    def existing(self, branch: str) -> Path:
        """The branch's worktree, which must exist already and be on the branch."""
        path = self.path(branch)
        if not self.is_worktree(path):
            raise OperationFailed(f"{branch} has no worktree at {path}; call worktree() first")
        self.check_on_branch(branch, path)
        return path

    def remove(self, branch: str) -> None:
        """Remove the branch's worktree, refused when tracked files have uncommitted changes."""
        path = self.path(branch)
        if self.is_worktree(path):
            self.check_clean(branch, path)
            with self.repo.lock():
                self.repo.run("worktree", "remove", "--force", str(path))
        with self.repo.lock():
            self.repo.run("worktree", "prune")

    def exclude(self) -> None:
        """List `.worktrees/` in the common git dir's info/exclude, once."""
        exclude = self.repo.git_dir / "info" / "exclude"
        with self.repo.lock():
            text = exclude.read_text() if exclude.exists() else ""
            if EXCLUDE_LINE in text.splitlines():
                return
            exclude.parent.mkdir(parents=True, exist_ok=True)
            sep = "" if not text or text.endswith("\n") else "\n"
            exclude.write_text(f"{text}{sep}{EXCLUDE_LINE}\n")

    def is_worktree(self, path: Path) -> bool:
        if not (path / ".git").exists():
            return False
        listing = self.repo.out("worktree", "list", "--porcelain")
        return f"worktree {path}" in listing.splitlines()

    def check_on_branch(self, branch: str, path: Path) -> None:
        head = git(path, "symbolic-ref", "--quiet", "HEAD", check=False).out.strip()
        if head != f"refs/heads/{branch}":
            state = head or "a detached HEAD"
            raise OperationFailed(f"worktree {path} is on {state}, not {branch}; left as it is")

    def check_clean(self, branch: str, path: Path) -> None:
        status = git(path, "status", "--porcelain", "--untracked-files=no").out
        if status.strip():
            files = ", ".join(line[3:] for line in status.splitlines()[:5])
            raise OperationFailed(
                f"worktree of {branch} is dirty (uncommitted changes: {files}); "
                "commit or discard them, the bot does not reset them"
            )

    def _add(self, branch: str, path: Path) -> None:
        self.repo.run("worktree", "prune")  # forget worktrees whose folder was deleted
        if path.exists() and any(path.iterdir()):
            raise OperationFailed(f"{path} exists but is not a worktree of {branch}; move it away")
        if self.repo.has_local(branch):
            self._check_not_checked_out(branch)
            self.repo.run("worktree", "add", "--quiet", str(path), branch)
            return
        remote = self.repo.remote
        if not self.repo.out("rev-parse", "--verify", "--quiet", self.repo.tracking_ref(branch), check=False).strip():
            raise BadInput(f"no branch {branch!r} here or on {remote}")
        self.repo.run("worktree", "add", "--quiet", "--track", "-b", branch, str(path), f"{remote}/{branch}")

    def _check_not_checked_out(self, branch: str) -> None:
        current = None
        for line in self.repo.out("worktree", "list", "--porcelain").splitlines():
            if line.startswith("worktree "):
                current = line[len("worktree ") :]
            elif line == f"branch refs/heads/{branch}":
                raise OperationFailed(
                    f"{branch} is checked out at {current}; switch that checkout to another branch "
                    f"so the bot can work on {branch} in {WORKTREES_DIR}/"
                )

    def _fast_forward(self, branch: str, path: Path) -> None:
        fields = (
            self.repo.out(
                "for-each-ref",
                "--format=%(upstream)%00%(upstream:remotename)%00%(upstream:remoteref)",
                f"refs/heads/{branch}",
            )
            .strip()
            .split("\0")
        )
        if len(fields) != 3 or not fields[0]:
            return  # no upstream: nothing to pull
        upstream = fields[0]  # fetched by Workspace.worktree() when it is <remote>/<branch>
        counts = git(path, "rev-list", "--left-right", "--count", f"HEAD...{upstream}").out.split()
        ahead, behind = int(counts[0]), int(counts[1])
        if ahead and behind:
            raise OperationFailed(
                f"{branch} has diverged from {upstream}: {ahead} local commit(s) not on the remote and "
                f"{behind} remote commit(s) not local; reconcile them by hand, the bot does not reset"
            )
        if behind:
            git(path, "merge", "--ff-only", "--quiet", upstream)
