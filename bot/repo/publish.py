"""Getting the bot's work onto the remote: commits of named paths, fetch, fast-forward pushes,
replaying a fix when the branch moved meanwhile, and the bot's own clone on a server.

Safety rules kept here:
- only the branch asked for is ever changed, locally and on the remote; pushes are fast-forward
  only (no `+` refspec, no `--force`);
- `discard_unpushed`, the one operation that throws work away, runs only in the bot's own server
  clone (made by `clone_for_server`, which marks it);
- an installation token is never written to `.git/config` nor put on a command line (see
  `bot.repo.git.RemoteAuth`), and every error text is stripped of it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from bot.core.errors import BadInput, OperationFailed
from bot.core.locks import exclusive
from bot.repo.git import NETWORK_TIMEOUT_S, GitResult, RemoteAuth, check_branch_name, git, one_line
from bot.repo.local import LOCK_NAME, LocalRepo
from bot.repo.worktrees import Worktrees

BOT_NAME = "fix-and-relaunch[bot]"
BOT_EMAIL = "fix-and-relaunch[bot]@users.noreply.github.com"
SERVER_CLONE_KEY = "fix-and-relaunch.serverclone"  # set in the bot's own clones (clone_for_server)

_OWNER_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_REJECTED = ("[rejected]", "(fetch first)", "(non-fast-forward)", "(stale info)")

AuthSource = str | Callable[[], str] | None


def is_server_clone(repo: Path) -> bool:
    """Whether `repo` is one of the bot's server clones (made by `clone_for_server`)."""
    return git(repo, "config", "--bool", "--get", SERVER_CLONE_KEY, check=False).out.strip() == "true"


def rejected(push_output: str) -> bool:
    """Whether git's push output says the remote refused a non-fast-forward update."""
    return any(marker in push_output for marker in _REJECTED)


class PushRejected(OperationFailed):
    """The remote refused a fast-forward push: the branch moved on the remote meanwhile."""


class NothingToCommit(OperationFailed):
    """The given paths hold no change against the branch's last commit."""


class Remote:
    """The repository's remote, one branch at a time: fetch into `<remote>/<branch>`, push fast-forward.

    `auth_url` (server mode) is the clone URL carrying the installation token; it authenticates
    fetch and push without being stored anywhere. A callable is called for each fetch and push
    and returns the URL to use then: an installation token expires after an hour, and a long
    job needs a fresh one for its last push.
    """

    def __init__(self, repo: LocalRepo, auth_url: AuthSource = None) -> None:
        self.repo = repo
        self._auth_source = auth_url
        self._seen_secrets: tuple[str, ...] = ()  # every token used so far, kept out of errors
        if not callable(auth_url):
            self._fresh_auth()  # parsed once; a callable is asked at each fetch and push

    def fetch(self, branch: str) -> bool:
        """Update `<remote>/<branch>` from the remote; False when the remote has no such branch."""
        check_branch_name(branch)
        refspec = f"+refs/heads/{branch}:{self.repo.tracking_ref(branch)}"
        auth = self._fresh_auth()
        with self.repo.lock():
            result = self._run(auth, "fetch", "--quiet", "--no-tags", self._target(auth), refspec)
        if result.ok:
            return True
        if "couldn't find remote ref" in result.err:
            return False
        raise OperationFailed(f"git fetch failed: {one_line(result.err, self._seen_secrets)}")

    def push(self, branch: str) -> None:
        """Fast-forward the remote branch to the local one; PushRejected if the remote moved on."""
        check_branch_name(branch)
        refspec = f"refs/heads/{branch}:refs/heads/{branch}"
        if refspec.startswith("+"):  # a leading '+' would make it a forced update
            raise BadInput(f"refusing to force-push {branch!r}")
        auth = self._fresh_auth()
        target = self._target(auth)
        with self.repo.lock():
            result = self._run(auth, "push", "--porcelain", target, refspec)
        text = one_line(f"{result.out}\n{result.err}", self._seen_secrets)
        if result.ok:
            if target != self.repo.remote:
                self._fetch_quietly(branch)
            return
        if rejected(text):
            raise PushRejected(f"push of {branch} rejected, the remote branch moved on: {text}")
        raise OperationFailed(f"git push of {branch} failed: {text}")

    def _fresh_auth(self) -> RemoteAuth:
        """The remote's authentication now: `auth_url` parsed, or called first when callable."""
        source = self._auth_source
        try:
            auth = RemoteAuth.parse(source() if callable(source) else source)
        except BadInput:
            raise
        except Exception as exc:
            raise OperationFailed(f"could not get credentials for {self.repo.remote}: {type(exc).__name__}") from None
        self._seen_secrets = tuple(dict.fromkeys(self._seen_secrets + auth.secrets))
        return auth

    def _run(self, auth: RemoteAuth, *args: str) -> GitResult:
        return git(
            self.repo.root, *args, env=auth.env, check=False, secrets=self._seen_secrets, timeout=NETWORK_TIMEOUT_S
        )

    def _target(self, auth: RemoteAuth) -> str:
        # The remote's name keeps its configured URL; a token URL is used as its clean form.
        configured = self.repo.out("config", "--get", f"remote.{self.repo.remote}.url", check=False).strip()
        if auth.url and auth.url != configured:
            return auth.url
        return self.repo.remote

    def _fetch_quietly(self, branch: str) -> None:
        # Keep <remote>/<branch> in step after a push to an explicit URL.
        try:
            self.fetch(branch)
        except OperationFailed:
            pass


class Publisher:
    """The writes: committing named paths, replaying a fix onto a moved remote branch, and
    (server clone only) dropping what was never pushed."""

    def __init__(self, repo: LocalRepo, worktrees: Worktrees, remote: Remote) -> None:
        self.repo = repo
        self.worktrees = worktrees
        self.remote = remote

    def commit(self, branch: str, paths: list[str], message: str, author: str | None = None) -> str:
        """Commit exactly `paths` (new, changed or deleted) on the branch's worktree; return the sha."""
        path = self.worktrees.existing(branch)
        if not paths:
            raise BadInput("commit needs at least one path")
        for rel in paths:
            _check_inside(path, rel)
        lit = ("--literal-pathspecs",)
        git(path, *lit, "add", "--", *paths)
        if git(path, *lit, "diff", "--cached", "--quiet", "HEAD", "--", *paths, check=False).ok:
            raise NothingToCommit(f"nothing to commit on {branch}: {', '.join(paths)} unchanged")
        args = ["commit", "--quiet", "--only", "-m", message]
        if author:
            args += ["--author", author]
        git(path, *lit, *args, "--", *paths, env=_identity_env(path))
        return git(path, "rev-parse", "HEAD").out.strip()

    def rebase_onto_remote(self, branch: str, paths_that_must_be_unchanged: list[str]) -> bool:
        """After a rejected push: replay our commits onto `<remote>/<branch>` and return True,
        unless the remote changed one of the given paths or the replay conflicts; then the
        branch and its worktree are left exactly as they were and the answer is False."""
        path = self.worktrees.existing(branch)
        self.worktrees.check_clean(branch, path)
        if not self.remote.fetch(branch):
            raise OperationFailed(f"{branch} no longer exists on {self.repo.remote}")
        upstream = self.repo.tracking_ref(branch)
        ours = git(path, "rev-parse", "HEAD").out.strip()
        base = git(path, "merge-base", ours, upstream).out.strip()
        if base == git(path, "rev-parse", upstream).out.strip():
            return True  # the remote did not move past us: nothing to replay
        if (
            paths_that_must_be_unchanged
            and not git(
                path,
                "--literal-pathspecs",
                "diff",
                "--quiet",
                base,
                upstream,
                "--",
                *paths_that_must_be_unchanged,
                check=False,
            ).ok
        ):
            return False
        return self._replay(branch, path, ours, upstream)

    def discard_unpushed(self, branch: str) -> list[str]:
        """Reset the branch's worktree to `<remote>/<branch>` (fetched first): local commits that
        were never pushed and uncommitted changes to tracked files are dropped; untracked files
        stay. Returns the dropped commits' shas, oldest first. The remote is never written.

        Only for the bot's OWN server clone (made by `clone_for_server`, which marks it): it
        throws work away, so it must never be used on a user's checkout, and refuses to run in
        a clone without that mark.
        """
        if self.repo.out("config", "--bool", "--get", SERVER_CLONE_KEY, check=False).strip() != "true":
            raise OperationFailed(
                f"{self.repo.root} is not the bot's own server clone; refusing to discard work on {branch}"
            )
        path = self.worktrees.existing(branch)
        if not self.remote.fetch(branch):
            raise OperationFailed(f"{branch} does not exist on {self.repo.remote}; nothing to reset to")
        upstream = self.repo.tracking_ref(branch)
        with self.repo.lock():
            dropped = git(path, "rev-list", "--reverse", f"{upstream}..HEAD", "--").out.split()
            git(path, "reset", "--quiet", "--hard", upstream, "--")
        return dropped

    def _replay(self, branch: str, path: Path, ours: str, upstream: str) -> bool:
        """Cherry-pick our commits onto `upstream` on a detached HEAD; move the branch only at the end."""
        picks = [line[2:] for line in git(path, "cherry", upstream, ours).out.splitlines() if line.startswith("+ ")]
        env = _identity_env(path)
        git(path, "checkout", "--quiet", "--detach", upstream)
        try:
            if picks and not git(path, "cherry-pick", "--allow-empty", *picks, env=env, check=False).ok:
                git(path, "cherry-pick", "--abort", check=False)
                _back_to(branch, path)
                return False
            new = git(path, "rev-parse", "HEAD").out.strip()
            # Compare-and-swap: fails if the branch moved since we read it.
            git(path, "update-ref", "-m", "fix-and-relaunch: replay onto remote", f"refs/heads/{branch}", new, ours)
        except BaseException:
            _back_to(branch, path)
            raise
        _back_to(branch, path)
        return True


def _back_to(branch: str, path: Path) -> None:
    git(path, "checkout", "--quiet", branch, "--")


def _check_inside(worktree: Path, rel: str) -> None:
    target = (worktree / rel).resolve()
    if not rel or rel.startswith("-") or Path(rel).is_absolute() or worktree not in target.parents:
        raise BadInput(f"path outside the worktree: {rel!r}")


def _identity_env(path: Path) -> dict[str, str]:
    """The bot's identity where the repository has none configured (e.g. on a server)."""
    name = git(path, "config", "user.name", check=False).out.strip()
    email = git(path, "config", "user.email", check=False).out.strip()
    if name and email:
        return {}
    return {
        "GIT_AUTHOR_NAME": BOT_NAME,
        "GIT_AUTHOR_EMAIL": BOT_EMAIL,
        "GIT_COMMITTER_NAME": BOT_NAME,
        "GIT_COMMITTER_EMAIL": BOT_EMAIL,
    }


# -- the bot's own clone on a server ------------------------------------------------------------


def clone_for_server(state_dir: Path, owner_repo: str, clone_url: str) -> Path:
    """The bot's clone of `owner/repo` under `state_dir/repos/`: cloned if missing, else fetched.

    The clone keeps no local branches and a detached HEAD, so any branch can get its worktree.
    """
    if not _OWNER_REPO.match(owner_repo) or any(p in (".", "..") for p in owner_repo.split("/")):
        raise BadInput(f"invalid repository name: {owner_repo!r}")
    dest = Path(state_dir) / "repos" / owner_repo
    with exclusive(dest.parent / f".{dest.name}.lock"):
        return _clone_or_fetch(dest, RemoteAuth.parse(clone_url))


def _clone_or_fetch(dest: Path, remote: RemoteAuth) -> Path:
    url = remote.url
    if not url:
        raise BadInput("a clone URL is needed for the server's clone")
    if (dest / ".git").exists():
        with exclusive(dest / ".git" / LOCK_NAME):
            if git(dest, "config", "--get", "remote.origin.url", check=False).out.strip() != url:
                git(dest, "remote", "set-url", "origin", url)
            git(
                dest,
                "fetch",
                "--quiet",
                "--prune",
                "origin",
                env=remote.env,
                secrets=remote.secrets,
                timeout=NETWORK_TIMEOUT_S,
            )
            git(dest, "worktree", "prune")
            git(dest, "config", SERVER_CLONE_KEY, "true")
        return dest
    if dest.exists() and any(dest.iterdir()):
        raise OperationFailed(f"{dest} exists and is not a git clone; move it away")
    dest.parent.mkdir(parents=True, exist_ok=True)
    git(
        dest.parent,
        "clone",
        "--quiet",
        "--no-checkout",
        "--",
        url,
        dest.name,
        env=remote.env,
        secrets=remote.secrets,
        timeout=NETWORK_TIMEOUT_S,
    )
    _detach_and_drop_local_branch(dest)
    git(dest, "config", SERVER_CLONE_KEY, "true")
    Worktrees(LocalRepo(dest)).exclude()
    return dest


def _detach_and_drop_local_branch(clone: Path) -> None:
    head = git(clone, "symbolic-ref", "--quiet", "HEAD", check=False).out.strip()
    sha = git(clone, "rev-parse", "--verify", "--quiet", "HEAD", check=False).out.strip()
    if not head or not sha:
        return  # empty repository: nothing checked out
    git(clone, "update-ref", "--no-deref", "HEAD", sha)
    git(clone, "update-ref", "-d", head)
