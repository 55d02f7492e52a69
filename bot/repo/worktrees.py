"""One worktree per branch, under `<repo>/.worktrees/<branch>` (a branch `a/b` is the nested
folder `.worktrees/a/b`); `.worktrees/` is listed in `.git/info/exclude` so it is never committed.

Each worktree is on a local branch of the repository the bot works in: its server clone, or,
in a user's clone, its private clone (`bot.repo.private_clone`), whose worktrees live in the
user's `.worktrees/` all the same. A branch has up to three views: that local branch, the
remote-tracking branch and, in a private clone, the user's own local branch; the worktree
follows the newest of them when every other one is in its history.

A dirty worktree (uncommitted changes to tracked files) or views that diverged are reported
(OperationFailed), never reset; untracked files (run outputs such as `wandb/`) are not "dirty".
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from bot.core.errors import BadInput, OperationFailed
from bot.repo.git import check_branch_name, git
from bot.repo.local import LocalRepo

WORKTREES_DIR = ".worktrees"
EXCLUDE_LINE = "/.worktrees/"
USER_REMOTE = "user"  # in a private clone: the user's repository, its branches under refs/remotes/user/


class View(NamedTuple):
    """One view of a branch: how a message names it, and the commit it is at."""

    name: str
    sha: str


class Worktrees:
    """The branches' worktrees of one repository: where they are, making and removing them, and
    the checks that keep a human's work safe. Fetching is the caller's (see `Workspace.worktree`)."""

    def __init__(self, repo: LocalRepo, home: LocalRepo | None = None) -> None:
        self.repo = repo  # whose branches the worktrees hold
        self.home = home or repo  # whose working tree holds `.worktrees/` (the user's, for a private clone)

    def path(self, branch: str) -> Path:
        """Where the branch's worktree is (or would be); BadInput for a name that leaves it."""
        check_branch_name(branch)
        base = (self.home.root / WORKTREES_DIR).resolve()
        path = (base / branch).resolve()
        if base not in path.parents:
            raise BadInput(f"invalid branch name: {branch!r} (leaves {WORKTREES_DIR}/)")
        return path

    def open(self, branch: str, *, fast_forward: bool) -> Path:
        """The branch's worktree, created (or recreated) if missing, checked to be on the branch
        and clean, then fast-forwarded to its upstream if asked."""
        path = self.path(branch)
        created = not self.is_worktree(path)
        if created:
            with self.repo.lock():
                self._add(branch, path)
        self.check_on_branch(branch, path)
        self.check_clean(branch, path)
        if fast_forward or created:
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
        exclude = self.home.git_dir / "info" / "exclude"
        with self.home.lock():
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

    # -- the branch's views -------------------------------------------------------------------

    def views(self, branch: str, path: Path | None = None) -> list[View]:
        """The views of the branch that exist: the worktree at `path` (else the local branch),
        the remote-tracking branch, and the user's local branch (in a private clone)."""
        found = []
        if path is not None:
            found.append(View("the bot's worktree", git(path, "rev-parse", "HEAD").out.strip()))
        refs = [] if path is not None else [(f"refs/heads/{branch}", f"local branch {branch}")]
        refs.append((self.repo.tracking_ref(branch), f"{self.repo.remote}/{branch}"))
        refs.append((f"refs/remotes/{USER_REMOTE}/{branch}", f"your local branch {branch}"))
        for ref, name in refs:
            sha = self.repo.out("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False).strip()
            if sha:
                found.append(View(name, sha))
        return found

    def tip(self, branch: str, path: Path | None = None) -> str:
        """The newest view of the branch, which every other view must be in the history of;
        BadInput when the branch exists nowhere, OperationFailed when two views diverged."""
        views = self.views(branch, path)
        if not views:
            raise BadInput(f"no branch {branch!r} here or on {self.repo.remote}")
        newest = views[0]
        for view in views[1:]:
            if self._contains(newest.sha, view.sha):
                continue
            if not self._contains(view.sha, newest.sha):
                raise self._diverged(branch, newest, view)
            newest = view
        return newest.sha

    def _contains(self, tip: str, sha: str) -> bool:
        return tip == sha or self.repo.run("merge-base", "--is-ancestor", sha, tip, check=False).ok

    def _diverged(self, branch: str, ours: View, theirs: View) -> OperationFailed:
        counts = self.repo.out("rev-list", "--left-right", "--count", f"{ours.sha}...{theirs.sha}").split()
        return OperationFailed(
            f"{branch} has diverged: {ours.name} has {counts[0]} commit(s) that {theirs.name} lacks, and "
            f"{theirs.name} has {counts[1]} that {ours.name} lacks; reconcile them by hand "
            "(e.g. git pull --rebase), the bot does not reset"
        )

    # -- making and moving the worktree ------------------------------------------------------

    def _add(self, branch: str, path: Path) -> None:
        self.repo.run("worktree", "prune")  # forget worktrees whose folder was deleted
        if path.exists() and any(path.iterdir()):
            raise OperationFailed(self._in_the_way(branch, path))
        if self.repo.has_local(branch):
            self._check_not_checked_out(branch)
            self.repo.run("worktree", "add", "--quiet", str(path), branch)
            return
        start = self.tip(branch)  # BadInput when the branch exists nowhere
        tracking = self.repo.tracking_ref(branch)
        if self.repo.out("rev-parse", "--verify", "--quiet", tracking, check=False).strip():
            self.repo.run("worktree", "add", "--quiet", "--track", "-b", branch, str(path), tracking)
        else:  # only the user has it, not pushed yet
            self.repo.run("worktree", "add", "--quiet", "-b", branch, str(path), start)

    def _in_the_way(self, branch: str, path: Path) -> str:
        if (path / ".git").is_file() and self.home is not self.repo:
            return (
                f"{path} is a worktree an earlier version of the bot made in your repository; move it away "
                f"(its run outputs are in it): mv {path} <elsewhere> && git worktree prune"
            )
        return f"{path} exists but is not a worktree of {branch}; move it away"

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
        """Move the worktree's branch to the newest view (fetched by Workspace.worktree())."""
        head = git(path, "rev-parse", "HEAD").out.strip()
        tip = self.tip(branch, path)
        if tip != head:
            git(path, "merge", "--ff-only", "--quiet", tip)
