"""The bot's own clone of a user's repository, so it never works on the user's branches.

In a researcher's clone the bot needs a branch of its own that bears the experiment branch's
name: the user may have that branch checked out (git lets a branch be checked out in one
worktree only), and the training script the bot relaunches may ask git which branch it is on
(to log it as the run config's `wandb.branch_key`, or through GitPython's `active_branch`,
which fails on a detached HEAD). So the bot keeps a bare clone of the user's repository in its
git dir, `.git/fix-and-relaunch.git`, made with hardlinks (no copy of the objects). Its
branches are the bot's own, checked out in the user's `.worktrees/<branch>` all the same, and
the user's branches are read from it as `refs/remotes/user/*`.

It reaches the remote through the user's repository, with the user's own remote, config and
credentials (`RelayRemote`): a fetch is the user's `git fetch origin <branch>` copied over; a
push hands the commit to the user's repository (objects only, under no ref) and runs
`git push origin <commit>:refs/heads/<branch>` there.

Safety rules kept here:
- in the user's repository only objects are added and `refs/remotes/<remote>/<branch>` moves as
  a `git fetch` would move it: no branch, working tree, index or config of theirs is written;
- pushes are fast-forward only (no `+`, no `--force`), to the branch asked for only;
- the clone is the bot's: a half-made one (a crash while cloning) is made again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bot.core.errors import OperationFailed
from bot.core.locks import exclusive
from bot.repo.git import NETWORK_TIMEOUT_S, check_branch_name, git, one_line
from bot.repo.local import LocalRepo
from bot.repo.publish import PushRejected, Remote, rejected
from bot.repo.worktrees import USER_REMOTE

CLONE_DIR = "fix-and-relaunch.git"  # in the user's common git dir
PRIVATE_CLONE_KEY = "fix-and-relaunch.privateclone"


def private_clone(user: LocalRepo) -> Path:
    """The bot's clone of the user's repository: made if missing, its view of the user's
    branches and remote-tracking branches brought up to date."""
    dest = user.git_dir / CLONE_DIR
    with exclusive(user.git_dir / f"{CLONE_DIR}.lock"):
        if not _is_made(dest):
            _make(user, dest)
        _refresh(user, dest)
    return dest


def user_repo_of(repo: Path) -> Path | None:
    """The user's repository when `repo` is (a worktree of) the bot's private clone of it."""
    if git(repo, "config", "--bool", "--get", PRIVATE_CLONE_KEY, check=False).out.strip() != "true":
        return None
    url = git(repo, "config", "--get", f"remote.{USER_REMOTE}.url", check=False).out.strip()
    return Path(url) if url else None


def _is_made(dest: Path) -> bool:
    config = dest / "config"  # read as a file: a half-made folder must not lead git up to the user's repo
    if not config.is_file():
        return False
    found = git(dest.parent, "config", "--file", str(config), "--bool", "--get", PRIVATE_CLONE_KEY, check=False)
    return found.out.strip() == "true"


def _make(user: LocalRepo, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)  # ours, half made: the mark is set last
    git(user.git_dir, "clone", "--bare", "--local", "--quiet", "--", str(user.root), str(dest))
    git(dest, "remote", "remove", "origin")  # the bare clone's pointer back at the user's repo
    sha = git(dest, "rev-parse", "--verify", "--quiet", "HEAD", check=False).out.strip()
    if sha:
        git(dest, "update-ref", "--no-deref", "HEAD", sha)  # detached: every branch is free
    for ref in git(dest, "for-each-ref", "--format=%(refname)", "refs/heads/").out.split():
        git(dest, "update-ref", "-d", ref)  # the bot's branches start from the user's, on demand
    git(dest, "remote", "add", USER_REMOTE, str(user.root))
    git(
        dest,
        "config",
        "--add",
        f"remote.{USER_REMOTE}.fetch",
        f"+refs/remotes/{user.remote}/*:refs/remotes/{user.remote}/*",
    )
    git(dest, "config", PRIVATE_CLONE_KEY, "true")


def _refresh(user: LocalRepo, dest: Path) -> None:
    """The user's branches and remote-tracking branches as they are now (no network)."""
    git(dest, "fetch", "--quiet", "--prune", "--no-tags", USER_REMOTE)
    prefix = f"refs/remotes/{user.remote}/"
    head = user.out("symbolic-ref", "--quiet", f"{prefix}HEAD", check=False).strip()
    if head.startswith(prefix) and git(dest, "rev-parse", "--verify", "--quiet", head, check=False).ok:
        git(dest, "symbolic-ref", f"{prefix}HEAD", head)  # the remote's default branch: the base


class RelayRemote(Remote):
    """The remote, reached through the user's repository: their remote, config and credentials."""

    def __init__(self, repo: LocalRepo, user: LocalRepo) -> None:
        super().__init__(repo)
        self.user = user

    def fetch(self, branch: str) -> bool:
        """The user's `git fetch <remote> <branch>`, then their view of it copied into the clone;
        False when the remote has no such branch."""
        check_branch_name(branch)
        tracking = self.user.tracking_ref(branch)
        result = git(
            self.user.root,
            "fetch",
            "--quiet",
            "--no-tags",
            self.user.remote,
            f"+refs/heads/{branch}:{tracking}",
            check=False,
            timeout=NETWORK_TIMEOUT_S,
        )
        if not result.ok and "couldn't find remote ref" not in result.err:
            raise OperationFailed(f"git fetch failed: {one_line(result.err)}")
        with self.repo.lock():
            self._copy(tracking, self.repo.tracking_ref(branch))
            self._copy(f"refs/heads/{branch}", f"refs/remotes/{USER_REMOTE}/{branch}")
        return result.ok

    def push(self, branch: str) -> None:
        """Push the clone's branch to the remote from the user's repository, fast-forward only;
        PushRejected if the remote moved on."""
        check_branch_name(branch)
        sha = self.repo.out("rev-parse", "--verify", f"refs/heads/{branch}^{{commit}}").strip()
        # The commit's objects into the user's repository, under no ref, so it can push them.
        git(
            self.user.root,
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            str(self.repo.root),
            f"refs/heads/{branch}",
        )
        result = git(
            self.user.root,
            "push",
            "--porcelain",
            self.user.remote,
            f"{sha}:refs/heads/{branch}",
            check=False,
            timeout=NETWORK_TIMEOUT_S,
        )
        text = one_line(f"{result.out}\n{result.err}")
        if not result.ok:
            if rejected(text):
                raise PushRejected(f"push of {branch} rejected, the remote branch moved on: {text}")
            raise OperationFailed(f"git push of {branch} failed: {text}")
        # Where the remote now is, as a fetch would record it, on both sides.
        self.user.run("update-ref", self.user.tracking_ref(branch), sha)
        with self.repo.lock():
            self.repo.run("update-ref", self.repo.tracking_ref(branch), sha)

    def _copy(self, source: str, target: str) -> None:
        """The user's ref `source` into the clone's `target`; gone there when gone here."""
        if self.user.out("rev-parse", "--verify", "--quiet", source, check=False).strip():
            git(self.repo.root, "fetch", "--quiet", "--no-tags", USER_REMOTE, f"+{source}:{target}")
        else:
            self.repo.run("update-ref", "-d", target, check=False)
