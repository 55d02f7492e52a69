"""Git, through GitPython: one worktree per branch, commits of named paths, fast-forward pushes.

Layout: each branch is worked on in `<repo>/.worktrees/<branch>` (a branch `a/b` is the nested
folder `.worktrees/a/b`); `.worktrees/` is listed in `.git/info/exclude` so it never gets
committed. In server mode one clone per repository lives under `state_dir/repos/<owner>/<repo>`
with the same layout.

Safety rules this module keeps:
- a dirty worktree (uncommitted changes to tracked files) or a diverged branch is reported
  (OperationFailed), never reset; untracked files (run outputs such as `wandb/`) are not "dirty".
  The one exception, `discard_unpushed`, works only in the bot's own server clone;
- only the branch asked for is ever changed, locally and on the remote; pushes are fast-forward
  only (no `+` refspec, no `--force`);
- an installation token in a clone URL is never written to `.git/config` nor put on a command
  line: it travels as an HTTP header through `GIT_CONFIG_*` environment variables, and every
  error text is stripped of `https://user:token@` userinfo (and of the token itself).
"""
from __future__ import annotations

import base64
import functools
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote, urlsplit, urlunsplit

import git

from bot.repo.branch_doc import doc_path
from bot.core.errors import BadInput, OperationFailed
from bot.core.locks import exclusive

WORKTREES_DIR = ".worktrees"
EXCLUDE_LINE = "/.worktrees/"
BOT_NAME = "fix-and-relaunch[bot]"
BOT_EMAIL = "fix-and-relaunch[bot]@users.noreply.github.com"
# The trailer on the bot's fix commits. A subject alone would not do: a human's
# "Fix: typo" must not count as the bot's work (reverted fixes, untested fixes, moved branch).
BOT_TRAILER = "Fix-and-relaunch"
NETWORK_TIMEOUT_S = 300
LOCK_NAME = "fix-and-relaunch.lock"   # in the common git dir
SERVER_CLONE_KEY = "fix-and-relaunch.serverclone"   # set in the bot's own clones (clone_for_server)

_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
_OWNER_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_REVERTS = re.compile(r"This reverts commit ([0-9a-f]{7,40})")
# One commit per NUL-ended record: sha, subject, the bot trailer's value (empty on other
# commits; git reads only the closing trailer block), then the body.
_LOG_FORMAT = f"--format=%H%n%s%n%(trailers:key={BOT_TRAILER},valueonly,separator=%x20)%n%b"
_REJECTED = ("[rejected]", "(fetch first)", "(non-fast-forward)", "(stale info)")


class PushRejected(OperationFailed):
    """The remote refused a fast-forward push: the branch moved on the remote meanwhile."""


class NothingToCommit(OperationFailed):
    """The given paths hold no change against the branch's last commit."""


def strip_credentials(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`https://user:token@host` → `https://host`, and any known secret value → `***`."""
    text = _USERINFO.sub(r"\1", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


@dataclass(frozen=True)
class _Remote:
    """A remote URL without credentials, and the environment that authenticates to it."""
    url: str | None
    env: dict[str, str]
    secrets: tuple[str, ...]

    @classmethod
    def parse(cls, url: str | None) -> "_Remote":
        if not url:
            return cls(None, {}, ())
        if not isinstance(url, str):
            raise BadInput("a remote URL must be a string")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
            return cls(strip_credentials(url), {}, ())
        userinfo, host = parts.netloc.rsplit("@", 1)
        user, _, password = (unquote(p) for p in userinfo.partition(":"))
        clean = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        # Scoped to this host; an environment variable is neither persisted nor shown by `ps`.
        env = _config_env({f"http.{parts.scheme}://{host}/.extraheader": f"AUTHORIZATION: basic {basic}"})
        return cls(clean, env, tuple(s for s in (password or user, basic) if s))


def _config_env(values: dict[str, str]) -> dict[str, str]:
    env = {"GIT_CONFIG_COUNT": str(len(values)), "GIT_TERMINAL_PROMPT": "0"}
    for i, (key, value) in enumerate(values.items()):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


@dataclass(frozen=True)
class _Result:
    code: int
    out: str
    err: str


def _run(cwd: Path, *args: str, env: dict[str, str] | None = None, check: bool = True,
         secrets: tuple[str, ...] = (), timeout: float | None = None) -> _Result:
    """Run `git <args>` in `cwd`; on failure raise OperationFailed with git's (redacted) stderr."""
    code, out, err = git.Git(str(cwd)).execute(
        ["git", *args], with_extended_output=True, with_exceptions=False, env=env,
        strip_newline_in_stdout=False, kill_after_timeout=timeout,
    )
    result = _Result(code, out, err)
    if check and code != 0:
        raise OperationFailed(f"git {args[0]} failed: {_one_line(result.err or result.out, secrets)}")
    return result


def _one_line(text: str, secrets: tuple[str, ...] = ()) -> str:
    return " ".join(strip_credentials(text, secrets).split()) or "no output"


class Commit(NamedTuple):
    sha: str
    subject: str
    by_bot: bool   # carries the bot's trailer
    body: str = ""


def fix_message(description: str, run_id: str) -> str:
    """The bot's commit message: `Fix: <what>`, and a trailer naming the run it fixes."""
    return f"Fix: {description}\n\n{BOT_TRAILER}: fixes run {' '.join(run_id.split())}\n"


def _parse_log(out: str) -> list[Commit]:
    """Commits from `git log -z` in `_LOG_FORMAT`."""
    commits = []
    for record in out.split("\0"):
        fields = record.lstrip("\n").split("\n", 3)
        if len(fields) >= 3 and fields[0]:
            commits.append(Commit(fields[0], fields[1], bool(fields[2].strip()),
                                  fields[3] if len(fields) == 4 else ""))
    return commits


def check_branch_name(branch: str) -> str:
    """Return `branch` if git accepts it as a branch name and it stays under `.worktrees/`."""
    if not isinstance(branch, str) or not branch or branch.startswith(("-", "+")) or "@{" in branch \
            or branch == "HEAD" or "\\" in branch or any(ord(c) < 32 for c in branch):
        raise BadInput(f"invalid branch name: {branch!r}")
    if not _git_accepts(branch) or any(part in ("", ".", "..") for part in branch.split("/")):
        raise BadInput(f"invalid branch name: {branch!r}")
    return branch


@functools.lru_cache(maxsize=1024)
def _git_accepts(branch: str) -> bool:
    """git's own verdict on a branch name; asked once per name (every git step checks it)."""
    result = _run(Path("/"), "check-ref-format", "--branch", branch, check=False)
    return result.code == 0 and result.out.strip() == branch


def clone_for_server(state_dir: Path, owner_repo: str, clone_url: str) -> Path:
    """The bot's clone of `owner/repo` under `state_dir/repos/`: cloned if missing, else fetched.

    The clone keeps no local branches and a detached HEAD, so any branch can get its worktree.
    """
    if not _OWNER_REPO.match(owner_repo) or any(p in (".", "..") for p in owner_repo.split("/")):
        raise BadInput(f"invalid repository name: {owner_repo!r}")
    dest = Path(state_dir) / "repos" / owner_repo
    with exclusive(dest.parent / f".{dest.name}.lock"):
        return _clone_or_fetch(dest, _Remote.parse(clone_url))


def _clone_or_fetch(dest: Path, remote: _Remote) -> Path:
    if (dest / ".git").exists():
        with exclusive(dest / ".git" / LOCK_NAME):
            if _run(dest, "config", "--get", "remote.origin.url", check=False).out.strip() != remote.url:
                _run(dest, "remote", "set-url", "origin", remote.url)
            _run(dest, "fetch", "--quiet", "--prune", "origin", env=remote.env, secrets=remote.secrets,
                 timeout=NETWORK_TIMEOUT_S)
            _run(dest, "worktree", "prune")
            _run(dest, "config", SERVER_CLONE_KEY, "true")
        return dest
    if dest.exists() and any(dest.iterdir()):
        raise OperationFailed(f"{dest} exists and is not a git clone; move it away")
    dest.parent.mkdir(parents=True, exist_ok=True)
    _run(dest.parent, "clone", "--quiet", "--no-checkout", "--", remote.url, dest.name,
         env=remote.env, secrets=remote.secrets, timeout=NETWORK_TIMEOUT_S)
    _detach_and_drop_local_branch(dest)
    _run(dest, "config", SERVER_CLONE_KEY, "true")
    Workspace(dest).exclude_worktrees()
    return dest


def _detach_and_drop_local_branch(clone: Path) -> None:
    head = _run(clone, "symbolic-ref", "--quiet", "HEAD", check=False).out.strip()
    sha = _run(clone, "rev-parse", "--verify", "--quiet", "HEAD", check=False).out.strip()
    if not head or not sha:
        return  # empty repository: nothing checked out
    _run(clone, "update-ref", "--no-deref", "HEAD", sha)
    _run(clone, "update-ref", "-d", head)


class Workspace:
    """The branches of one repository, each in its own worktree under `<repo>/.worktrees/`.

    `auth_url` (server mode) is the clone URL carrying the installation token; it authenticates
    fetch and push without being stored anywhere. A callable is called for each fetch and push
    and returns the URL to use then: an installation token expires after an hour, and a long
    job needs a fresh one for its last push.
    """

    def __init__(self, repo: Path, remote: str = "origin",
                 auth_url: str | Callable[[], str] | None = None) -> None:
        self.remote = remote
        self._auth_source = auth_url
        self._seen_secrets: tuple[str, ...] = ()   # every token used so far, kept out of errors
        if not callable(auth_url):
            self._fresh_auth()   # parsed once; a callable is asked at each fetch and push
        self.root = self._main_worktree(Path(repo))
        common = Path(self._git("rev-parse", "--git-common-dir").strip())
        self.git_dir = common if common.is_absolute() else (self.root / common).resolve()

    # -- worktrees -------------------------------------------------------------------------

    def worktree_path(self, branch: str) -> Path:
        check_branch_name(branch)
        base = (self.root / WORKTREES_DIR).resolve()
        path = (base / branch).resolve()
        if base not in path.parents:
            raise BadInput(f"invalid branch name: {branch!r} (leaves {WORKTREES_DIR}/)")
        return path

    def worktree(self, branch: str, *, pull: bool = True) -> Path:
        """The branch's worktree: created (or recreated) if missing, fast-forwarded if `pull`."""
        path = self.worktree_path(branch)
        self.exclude_worktrees()
        if pull or not self._has_local(branch):
            self.fetch(branch)
        if not self._is_worktree(path):
            self._create_worktree(branch, path)
        self._check_on_branch(branch, path)
        self._check_clean(branch, path)
        if pull:
            self._fast_forward(branch, path)
        return path

    def remove_worktree(self, branch: str) -> None:
        """Remove the branch's worktree (e.g. its PR closed); the branch itself is kept.

        Refused when tracked files have uncommitted changes; untracked run outputs go with it.
        """
        path = self.worktree_path(branch)
        if self._is_worktree(path):
            self._check_clean(branch, path)
            with self._lock():
                self._git("worktree", "remove", "--force", str(path))
        with self._lock():
            self._git("worktree", "prune")

    def exclude_worktrees(self) -> None:
        """List `.worktrees/` in the common git dir's info/exclude, once."""
        exclude = self.git_dir / "info" / "exclude"
        with self._lock():
            text = exclude.read_text() if exclude.exists() else ""
            if EXCLUDE_LINE in text.splitlines():
                return
            exclude.parent.mkdir(parents=True, exist_ok=True)
            sep = "" if not text or text.endswith("\n") else "\n"
            exclude.write_text(f"{text}{sep}{EXCLUDE_LINE}\n")

    # -- reading ---------------------------------------------------------------------------

    def head(self, branch: str) -> str:
        """The commit the branch's worktree is at (the local branch when it has no worktree)."""
        path = self.worktree_path(branch)
        if self._is_worktree(path):
            return _run(path, "rev-parse", "HEAD").out.strip()
        return self._git("rev-parse", "--verify", self._ref(branch) + "^{commit}").strip()

    def is_ancestor(self, commit: str, branch: str) -> bool:
        """Whether `commit` is in the branch's history; False for unknown commits."""
        if not commit or commit.startswith("-"):
            return False
        try:
            ref = self._ref(branch)
        except BadInput:
            return False
        return _run(self.root, "merge-base", "--is-ancestor", commit, ref, check=False).code == 0

    def base_branch(self, branch: str) -> str | None:
        """The remote's default branch (origin/HEAD), else main or master; None if it is `branch`."""
        head = self._git("symbolic-ref", "--quiet", f"refs/remotes/{self.remote}/HEAD", check=False).strip()
        prefix = f"refs/remotes/{self.remote}/"
        candidates = [head[len(prefix):]] if head.startswith(prefix) else ["main", "master"]
        for name in candidates:
            if self._find_ref(name) and name != branch:
                return name
        return None

    def file_at(self, ref: str, path: str) -> str | None:
        """The content of `path` at `ref` (a branch, local or remote-only, or a commit); None if absent."""
        if not ref or ref.startswith("-") or not path or path.startswith(("/", "-")):
            raise BadInput(f"invalid ref or path: {ref!r} {path!r}")
        resolved = self._find_ref(ref) or ref
        result = _run(self.root, "cat-file", "blob", f"{resolved}:{path}", check=False)
        if result.code != 0:
            return None
        return result.out.encode("utf-8", "surrogateescape").decode("utf-8", "replace")

    def reverted_bot_fixes(self, branch: str) -> list[str]:
        """Bot fix commits a human undid, newest first: reverted with `git revert`, or every file
        the fix changed (its docs page aside) is back to its content before the fix."""
        commits = self._own_commits(branch)
        reverted = {m.group(1) for c in commits if c.subject.startswith("Revert ")
                    for m in _REVERTS.finditer(c.body)}
        tip = self._ref(branch)
        return [c.sha for c in commits if c.by_bot and (any(c.sha.startswith(r) for r in reverted)
                                                        or self._undone(c.sha, tip, branch))]

    def files_changed(self, sha: str, branch: str) -> list[str]:
        """The files a (non-merge) commit changed, the branch's docs page aside."""
        out = self._git("diff-tree", "-z", "--no-commit-id", "--name-only", "-r", sha)
        return [f for f in out.split("\0") if f and f != doc_path(branch)]

    def on_remote(self, sha: str, branch: str) -> bool:
        """Whether `sha` is in the remote-tracking branch, as last fetched."""
        return _run(self.root, "merge-base", "--is-ancestor", sha, f"refs/remotes/{self.remote}/{branch}",
                    check=False).code == 0

    def commits_since(self, base: str, branch: str) -> list[Commit]:
        """The commits at the branch's worktree HEAD not reachable from `base` (a commit or
        ref), oldest first; BadInput when `base` is not a commit here."""
        path = self._existing_worktree(branch)
        if not base or base.startswith("-"):
            raise BadInput(f"invalid base commit: {base!r}")
        sha = _run(path, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{base}^{{commit}}",
                   check=False).out.strip()
        if not sha:
            raise BadInput(f"unknown commit {base!r} in {self.root}")
        return _parse_log(_run(path, "log", "-z", "--reverse", _LOG_FORMAT, f"{sha}..HEAD", "--").out)

    # -- writing ---------------------------------------------------------------------------

    def commit(self, branch: str, paths: list[str], message: str, author: str | None = None) -> str:
        """Commit exactly `paths` (new, changed or deleted) on the branch's worktree; return the sha."""
        path = self._existing_worktree(branch)
        if not paths:
            raise BadInput("commit needs at least one path")
        for rel in paths:
            self._check_inside(path, rel)
        lit = ("--literal-pathspecs",)
        _run(path, *lit, "add", "--", *paths)
        if _run(path, *lit, "diff", "--cached", "--quiet", "HEAD", "--", *paths, check=False).code == 0:
            raise NothingToCommit(f"nothing to commit on {branch}: {', '.join(paths)} unchanged")
        args = ["commit", "--quiet", "--only", "-m", message]
        if author:
            args += ["--author", author]
        _run(path, *lit, *args, "--", *paths, env=self._identity_env(path))
        return _run(path, "rev-parse", "HEAD").out.strip()

    def fetch(self, branch: str) -> bool:
        """Update `<remote>/<branch>` from the remote; False when the remote has no such branch."""
        check_branch_name(branch)
        refspec = f"+refs/heads/{branch}:refs/remotes/{self.remote}/{branch}"
        auth = self._fresh_auth()
        with self._lock():
            result = self._remote_git(auth, "fetch", "--quiet", "--no-tags", self._remote_target(auth), refspec,
                                      check=False)
        if result.code == 0:
            return True
        if "couldn't find remote ref" in result.err:
            return False
        raise OperationFailed(f"git fetch failed: {_one_line(result.err, self._seen_secrets)}")

    def push(self, branch: str) -> None:
        """Fast-forward the remote branch to the local one; PushRejected if the remote moved on."""
        check_branch_name(branch)
        refspec = f"refs/heads/{branch}:refs/heads/{branch}"
        if refspec.startswith("+"):  # a leading '+' would make it a forced update
            raise BadInput(f"refusing to force-push {branch!r}")
        auth = self._fresh_auth()
        target = self._remote_target(auth)
        with self._lock():
            result = self._remote_git(auth, "push", "--porcelain", target, refspec, check=False)
        text = _one_line(f"{result.out}\n{result.err}", self._seen_secrets)
        if result.code == 0:
            if target != self.remote:
                self._fetch_quietly(branch)
            return
        if any(marker in text for marker in _REJECTED):
            raise PushRejected(f"push of {branch} rejected, the remote branch moved on: {text}")
        raise OperationFailed(f"git push of {branch} failed: {text}")

    def discard_unpushed(self, branch: str) -> list[str]:
        """Reset the branch's worktree to `<remote>/<branch>` (fetched first): local commits that
        were never pushed and uncommitted changes to tracked files are dropped; untracked files
        stay. Returns the dropped commits' shas, oldest first. The remote is never written.

        Only for the bot's OWN server clone (made by `clone_for_server`, which marks it): it
        throws work away, so it must never be used on a user's checkout, and refuses to run in
        a clone without that mark.
        """
        if _run(self.root, "config", "--bool", "--get", SERVER_CLONE_KEY, check=False).out.strip() != "true":
            raise OperationFailed(f"{self.root} is not the bot's own server clone; refusing to discard "
                                  f"work on {branch}")
        path = self._existing_worktree(branch)
        if not self.fetch(branch):
            raise OperationFailed(f"{branch} does not exist on {self.remote}; nothing to reset to")
        upstream = f"refs/remotes/{self.remote}/{branch}"
        with self._lock():
            dropped = _run(path, "rev-list", "--reverse", f"{upstream}..HEAD", "--").out.split()
            _run(path, "reset", "--quiet", "--hard", upstream, "--")
        return dropped

    def rebase_onto_remote(self, branch: str, paths_that_must_be_unchanged: list[str]) -> bool:
        """After a rejected push: replay our commits onto `<remote>/<branch>` and return True,
        unless the remote changed one of the given paths or the replay conflicts; then the
        branch and its worktree are left exactly as they were and the answer is False."""
        path = self._existing_worktree(branch)
        self._check_clean(branch, path)
        if not self.fetch(branch):
            raise OperationFailed(f"{branch} no longer exists on {self.remote}")
        upstream = f"refs/remotes/{self.remote}/{branch}"
        ours = _run(path, "rev-parse", "HEAD").out.strip()
        base = _run(path, "merge-base", ours, upstream).out.strip()
        if base == _run(path, "rev-parse", upstream).out.strip():
            return True  # the remote did not move past us: nothing to replay
        if paths_that_must_be_unchanged and _run(
                path, "--literal-pathspecs", "diff", "--quiet", base, upstream, "--",
                *paths_that_must_be_unchanged, check=False).code != 0:
            return False
        return self._replay(branch, path, ours, upstream)

    # -- internals -------------------------------------------------------------------------

    def _main_worktree(self, repo: Path) -> Path:
        if not repo.is_dir():
            raise BadInput(f"not a directory: {repo}")
        result = _run(repo, "worktree", "list", "--porcelain", check=False)
        if result.code != 0:
            raise BadInput(f"not a git repository: {repo}")
        first = result.out.split("\n", 1)[0]
        return Path(first[len("worktree "):]).resolve() if first.startswith("worktree ") else repo.resolve()

    def _git(self, *args: str, check: bool = True) -> str:
        return _run(self.root, *args, check=check).out

    def _fresh_auth(self) -> _Remote:
        """The remote's authentication now: `auth_url` parsed, or called first when callable."""
        source = self._auth_source
        try:
            auth = _Remote.parse(source() if callable(source) else source)
        except BadInput:
            raise
        except Exception as exc:  # noqa: BLE001 - the token source failed: say so, without its text
            raise OperationFailed(f"could not get credentials for {self.remote}: {type(exc).__name__}") from None
        self._seen_secrets = tuple(dict.fromkeys(self._seen_secrets + auth.secrets))
        return auth

    def _remote_git(self, auth: _Remote, *args: str, check: bool = True) -> _Result:
        return _run(self.root, *args, env=auth.env, check=check, secrets=self._seen_secrets,
                    timeout=NETWORK_TIMEOUT_S)

    def _remote_target(self, auth: _Remote) -> str:
        # The remote's name keeps its configured URL; a token URL is used as its clean form.
        if auth.url and auth.url != self._configured_url():
            return auth.url
        return self.remote

    def _configured_url(self) -> str:
        return self._git("config", "--get", f"remote.{self.remote}.url", check=False).strip()

    def _fetch_quietly(self, branch: str) -> None:
        # Keep <remote>/<branch> in step after a push to an explicit URL.
        try:
            self.fetch(branch)
        except OperationFailed:
            pass

    def _find_ref(self, name: str) -> str | None:
        for ref in (f"refs/heads/{name}", f"refs/remotes/{self.remote}/{name}"):
            if self._git("rev-parse", "--verify", "--quiet", ref, check=False).strip():
                return ref
        return None

    def _ref(self, branch: str) -> str:
        check_branch_name(branch)
        ref = self._find_ref(branch)
        if ref is None:
            raise BadInput(f"no branch {branch!r} here or on {self.remote}")
        return ref

    def _is_worktree(self, path: Path) -> bool:
        if not (path / ".git").exists():
            return False
        listing = self._git("worktree", "list", "--porcelain")
        return f"worktree {path}" in listing.splitlines()

    def _existing_worktree(self, branch: str) -> Path:
        path = self.worktree_path(branch)
        if not self._is_worktree(path):
            raise OperationFailed(f"{branch} has no worktree at {path}; call worktree() first")
        self._check_on_branch(branch, path)
        return path

    def _has_local(self, branch: str) -> bool:
        return bool(self._git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False).strip())

    def _lock(self) -> AbstractContextManager[None]:
        # Jobs on two branches of one server clone run side by side; git commands that
        # write shared refs or worktree metadata take turns.
        return exclusive(self.git_dir / LOCK_NAME)

    def _create_worktree(self, branch: str, path: Path) -> None:
        with self._lock():
            self._add_worktree(branch, path)

    def _add_worktree(self, branch: str, path: Path) -> None:
        self._git("worktree", "prune")  # forget worktrees whose folder was deleted
        if path.exists() and any(path.iterdir()):
            raise OperationFailed(f"{path} exists but is not a worktree of {branch}; move it away")
        if self._has_local(branch):
            self._checked_out_elsewhere(branch)
            self._git("worktree", "add", "--quiet", str(path), branch)
            return
        tracking = f"refs/remotes/{self.remote}/{branch}"
        if not self._git("rev-parse", "--verify", "--quiet", tracking, check=False).strip():
            raise BadInput(f"no branch {branch!r} here or on {self.remote}")
        self._git("worktree", "add", "--quiet", "--track", "-b", branch, str(path), f"{self.remote}/{branch}")

    def _checked_out_elsewhere(self, branch: str) -> None:
        lines = self._git("worktree", "list", "--porcelain").splitlines()
        current = None
        for line in lines:
            if line.startswith("worktree "):
                current = line[len("worktree "):]
            elif line == f"branch refs/heads/{branch}":
                raise OperationFailed(
                    f"{branch} is checked out at {current}; switch that checkout to another branch "
                    f"so the bot can work on {branch} in {WORKTREES_DIR}/")

    def _check_on_branch(self, branch: str, path: Path) -> None:
        head = _run(path, "symbolic-ref", "--quiet", "HEAD", check=False).out.strip()
        if head != f"refs/heads/{branch}":
            state = head or "a detached HEAD"
            raise OperationFailed(f"worktree {path} is on {state}, not {branch}; left as it is")

    def _check_clean(self, branch: str, path: Path) -> None:
        status = _run(path, "status", "--porcelain", "--untracked-files=no").out
        if status.strip():
            files = ", ".join(line[3:] for line in status.splitlines()[:5])
            raise OperationFailed(f"worktree of {branch} is dirty (uncommitted changes: {files}); "
                                  "commit or discard them, the bot does not reset them")

    def _fast_forward(self, branch: str, path: Path) -> None:
        fields = self._git("for-each-ref", "--format=%(upstream)%00%(upstream:remotename)%00%(upstream:remoteref)",
                           f"refs/heads/{branch}").strip().split("\0")
        if len(fields) != 3 or not fields[0]:
            return  # no upstream: nothing to pull
        upstream = fields[0]  # fetched by worktree() when it is <remote>/<branch>
        counts = _run(path, "rev-list", "--left-right", "--count", f"HEAD...{upstream}").out.split()
        ahead, behind = int(counts[0]), int(counts[1])
        if ahead and behind:
            raise OperationFailed(
                f"{branch} has diverged from {upstream}: {ahead} local commit(s) not on the remote and "
                f"{behind} remote commit(s) not local; reconcile them by hand, the bot does not reset")
        if behind:
            _run(path, "merge", "--ff-only", "--quiet", upstream)

    def _check_inside(self, worktree: Path, rel: str) -> None:
        target = (worktree / rel).resolve()
        if not rel or rel.startswith("-") or Path(rel).is_absolute() or worktree not in target.parents:
            raise BadInput(f"path outside the worktree: {rel!r}")

    def _identity_env(self, path: Path) -> dict[str, str]:
        """The bot's identity where the repository has none configured (e.g. on a server)."""
        name = _run(path, "config", "user.name", check=False).out.strip()
        email = _run(path, "config", "user.email", check=False).out.strip()
        if name and email:
            return {}
        return {"GIT_AUTHOR_NAME": BOT_NAME, "GIT_AUTHOR_EMAIL": BOT_EMAIL,
                "GIT_COMMITTER_NAME": BOT_NAME, "GIT_COMMITTER_EMAIL": BOT_EMAIL}

    def _replay(self, branch: str, path: Path, ours: str, upstream: str) -> bool:
        """Cherry-pick our commits onto `upstream` on a detached HEAD; move the branch only at the end."""
        picks = [line[2:] for line in _run(path, "cherry", upstream, ours).out.splitlines() if line.startswith("+ ")]
        env = self._identity_env(path)
        _run(path, "checkout", "--quiet", "--detach", upstream)
        try:
            if picks and _run(path, "cherry-pick", "--allow-empty", *picks, env=env, check=False).code != 0:
                _run(path, "cherry-pick", "--abort", check=False)
                self._back_to(branch, path)
                return False
            new = _run(path, "rev-parse", "HEAD").out.strip()
            # Compare-and-swap: fails if the branch moved since we read it.
            _run(path, "update-ref", "-m", "fix-and-relaunch: replay onto remote", f"refs/heads/{branch}", new, ours)
        except BaseException:
            self._back_to(branch, path)
            raise
        self._back_to(branch, path)
        return True

    def _back_to(self, branch: str, path: Path) -> None:
        _run(path, "checkout", "--quiet", branch, "--")

    def _own_commits(self, branch: str) -> list[Commit]:
        """The branch's commits not on its base, newest first."""
        tip = self._ref(branch)
        base = self.base_branch(branch)
        span = f"{self._ref(base)}..{tip}" if base else tip
        return _parse_log(self._git("log", "-z", "--max-count=500", _LOG_FORMAT, span))

    def _undone(self, sha: str, tip: str, branch: str) -> bool:
        parents = self._git("rev-list", "--parents", "-n", "1", sha).split()
        if len(parents) != 2:
            return False  # root or merge commit: not a bot fix
        files = self.files_changed(sha, branch)
        if not files:
            return False
        return _run(self.root, "--literal-pathspecs", "diff", "--quiet", parents[1], tip, "--", *files,
                    check=False).code == 0
