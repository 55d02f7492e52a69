"""The user's own checkout of a branch, which the bot reads but does not write while it works.

The bot commits in its own detached worktree and pushes to the remote. Afterwards the user's
local branch is brought to the pushed commit only when that is a fast-forward and safe:

- not checked out anywhere: the branch ref moves (compare-and-swap; no working tree involved);
- checked out in a clean checkout (no uncommitted change to a tracked file): `git merge
  --ff-only` there, which git refuses rather than overwrite anything;
- otherwise it is left exactly as it is, and the one command that takes the fix is returned.

Safety rules kept here: nothing here resets, stashes, checks out or commits; a checkout with
uncommitted changes is never written; a local branch with commits the pushed one lacks is
never moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from bot.repo.git import git, one_line
from bot.repo.local import LocalRepo

SHOWN_FILES = 5


class Sync(str, Enum):
    UP_TO_DATE = "up_to_date"  # the local branch is at the pushed commit already
    FAST_FORWARDED = "fast_forwarded"  # the user's clean checkout was fast-forwarded
    BRANCH_MOVED = "branch_moved"  # the local branch (checked out nowhere) was moved
    LEFT = "left"  # left as it is; `command` takes the fix
    NO_LOCAL_BRANCH = "no_local_branch"  # nothing local to bring along

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class CheckoutSync:
    """What happened to the user's side of the branch after the bot pushed."""

    sync: Sync
    branch: str
    checkout: Path | None = None  # where the branch is checked out, if anywhere
    command: str | None = None  # with LEFT: what the user runs (in `checkout`) to take the fix
    reason: str | None = None  # with LEFT: why it was left

    def message(self, cwd: Path | None = None) -> str | None:
        """One line for the user, or None when there is nothing to say."""
        where = f" at {self.checkout}" if self.checkout else ""
        if self.sync is Sync.FAST_FORWARDED:
            return f"your checkout of {self.branch}{where} was fast-forwarded to the fix"
        if self.sync is Sync.BRANCH_MOVED:
            return f"your local branch {self.branch} was fast-forwarded to the fix"
        if self.sync is not Sync.LEFT:
            return None
        command = self.command or ""
        if self.checkout and cwd is not None and Path(cwd).resolve() != self.checkout:
            command = command.replace("git ", f"git -C {self.checkout} ", 1)
        return f"your checkout of {self.branch}{where} was left as it is ({self.reason}); to take the fix: {command}"


@dataclass(frozen=True)
class Checkout:
    """Where the user has a branch checked out, and what is uncommitted there."""

    path: Path
    uncommitted: list[str]

    @property
    def clean(self) -> bool:
        return not self.uncommitted

    def describe(self) -> str:
        shown = ", ".join(self.uncommitted[:SHOWN_FILES])
        more = f" and {len(self.uncommitted) - SHOWN_FILES} more" if len(self.uncommitted) > SHOWN_FILES else ""
        return f"uncommitted changes in {shown}{more}"


def find_checkout(repo: LocalRepo, branch: str) -> Checkout | None:
    """The checkout (main or linked worktree) that has `branch` checked out, if any."""
    current = None
    for line in repo.out("worktree", "list", "--porcelain").splitlines():
        if line.startswith("worktree "):
            current = Path(line[len("worktree ") :])
        elif line == f"branch refs/heads/{branch}" and current is not None:
            return Checkout(current, uncommitted(current))
    return None


def uncommitted(path: Path) -> list[str]:
    """Tracked files with changes not committed (staged or not); untracked files do not count."""
    entries = iter(git(path, "status", "--porcelain", "-z", "--untracked-files=no").out.split("\0"))
    files = []
    for entry in entries:
        if len(entry) < 4:
            continue
        files.append(entry[3:])
        if entry[0] in "RC":  # a rename or copy: its source path comes next
            next(entries, None)
    return files


def bring_along(repo: LocalRepo, branch: str, pushed: str) -> CheckoutSync:
    """Move the user's local `branch` to `pushed` (the commit the bot pushed) where that is a
    safe fast-forward; otherwise say what to run."""
    local = repo.out("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}", check=False).strip()
    if not local:
        return CheckoutSync(Sync.NO_LOCAL_BRANCH, branch)
    if local == pushed:
        return CheckoutSync(Sync.UP_TO_DATE, branch)
    checkout = find_checkout(repo, branch)
    where = checkout.path if checkout else None
    upstream = f"{repo.remote}/{branch}"
    if not repo.run("merge-base", "--is-ancestor", local, pushed, check=False).ok:
        reason = f"it has commits that {upstream} lacks"
        return CheckoutSync(Sync.LEFT, branch, where, f"git pull --rebase {repo.remote} {branch}", reason)
    if checkout is None:
        ref = f"refs/heads/{branch}"
        moved = repo.run("update-ref", "-m", "fix-and-relaunch: fast-forward to the pushed fix", ref, pushed, local)
        return CheckoutSync(Sync.BRANCH_MOVED, branch) if moved.ok else _left(branch, None, upstream, "it moved")
    if not checkout.clean:
        return _left(branch, checkout.path, upstream, checkout.describe())
    merged = git(checkout.path, "merge", "--ff-only", "--quiet", pushed, check=False)
    if not merged.ok:
        return _left(branch, checkout.path, upstream, one_line(merged.err or merged.out))
    return CheckoutSync(Sync.FAST_FORWARDED, branch, checkout.path)


def _left(branch: str, checkout: Path | None, upstream: str, reason: str) -> CheckoutSync:
    return CheckoutSync(Sync.LEFT, branch, checkout, f"git merge --ff-only {upstream}", reason)
