"""Reading a branch's history: where it is, what it holds, and which commits are the bot's fixes.

The bot's fix commits carry a trailer (`BOT_TRAILER`). A subject alone would not do: a human's
"Fix: typo" must not count as the bot's work (reverted fixes, untested fixes, moved branch).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from bot.core.errors import BadInput
from bot.core.secrets import Redactor
from bot.repo.branch_doc import doc_candidates
from bot.repo.git import check_branch_name, git
from bot.repo.local import LocalRepo
from bot.repo.worktrees import Worktrees

BOT_TRAILER = "Fix-and-relaunch"

_REVERTS = re.compile(r"This reverts commit ([0-9a-f]{7,40})")
# One commit per NUL-ended record: sha, subject, the bot trailer's value (empty on other
# commits; git reads only the closing trailer block), then the body.
_LOG_FORMAT = f"--format=%H%n%s%n%(trailers:key={BOT_TRAILER},valueonly,separator=%x20)%n%b"


class Commit(NamedTuple):
    sha: str
    subject: str
    by_bot: bool  # carries the bot's trailer
    body: str = ""


def fix_message(description: str, run_id: str, redactor: Redactor) -> str:
    """The bot's commit message: `Fix: <what>`, and a trailer naming the run it fixes; redacted
    last (the description may come from a model)."""
    return redactor.text(f"Fix: {description}\n\n{BOT_TRAILER}: fixes run {' '.join(run_id.split())}\n")


def parse_log(out: str) -> list[Commit]:
    """Commits from `git log -z` in `_LOG_FORMAT`."""
    commits = []
    for record in out.split("\0"):
        fields = record.lstrip("\n").split("\n", 3)
        if len(fields) >= 3 and fields[0]:
            commits.append(Commit(fields[0], fields[1], bool(fields[2].strip()), fields[3] if len(fields) == 4 else ""))
    return commits


class History:
    """Questions about the branches of one repository; nothing here writes."""

    def __init__(self, repo: LocalRepo, worktrees: Worktrees) -> None:
        self.repo = repo
        self.worktrees = worktrees
        self._pr_bases: dict[str, str] = {}

    def head(self, branch: str) -> str:
        """The commit the branch's worktree is at (the local branch when it has no worktree)."""
        path = self.worktrees.path(branch)
        if self.worktrees.is_worktree(path):
            return git(path, "rev-parse", "HEAD").out.strip()
        return self.repo.out("rev-parse", "--verify", self.repo.ref(branch) + "^{commit}").strip()

    def is_ancestor(self, commit: str, branch: str) -> bool:
        """Whether `commit` is in the history of any view of the branch (the local branch, the
        remote one, the user's own in a private clone); False for unknown commits."""
        if not commit or commit.startswith("-"):
            return False
        try:
            views = self.worktrees.views(check_branch_name(branch))
        except BadInput:
            return False
        return any(self.repo.run("merge-base", "--is-ancestor", commit, v.sha, check=False).ok for v in views)

    def on_remote(self, sha: str, branch: str) -> bool:
        """Whether `sha` is in the remote-tracking branch, as last fetched."""
        return self.repo.run("merge-base", "--is-ancestor", sha, self.repo.tracking_ref(branch), check=False).ok

    def set_base_branch(self, branch: str, base: str) -> None:
        """The branch's pull request targets `base`: the branch is compared with it (its own
        commits and runs, its baseline, the diff a fixer reads), not with the default branch.
        A stacked experiment's parent is not `main`."""
        self._pr_bases[branch] = base

    def base_branch(self, branch: str) -> str | None:
        """The base its pull request targets (`set_base_branch`), else the remote's default branch
        (origin/HEAD), else main or master: the first that is a branch here; None if it is `branch`."""
        prefix = f"refs/remotes/{self.repo.remote}/"
        head = self.repo.out("symbolic-ref", "--quiet", f"{prefix}HEAD", check=False).strip()
        candidates = [self._pr_bases[branch]] if branch in self._pr_bases else []
        candidates += [head[len(prefix) :]] if head.startswith(prefix) else ["main", "master"]
        for name in candidates:
            if self.repo.find_ref(name) and name != branch:
                return name
        return None

    def file_at(self, ref: str, path: str) -> str | None:
        """The content of `path` at `ref` (a branch, local or remote-only, or a commit); None if absent."""
        if not ref or ref.startswith("-") or not path or path.startswith(("/", "-")):
            raise BadInput(f"invalid ref or path: {ref!r} {path!r}")
        resolved = self.repo.find_ref(ref) or ref
        result = self.repo.run("cat-file", "blob", f"{resolved}:{path}", check=False)
        return result.text() if result.ok else None

    def commits_since(self, base: str, branch: str) -> list[Commit]:
        """The commits at the branch's worktree HEAD not reachable from `base` (a commit or
        ref), oldest first; BadInput when `base` is not a commit here."""
        path = self.worktrees.existing(branch)
        if not base or base.startswith("-"):
            raise BadInput(f"invalid base commit: {base!r}")
        sha = git(
            path, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{base}^{{commit}}", check=False
        ).out.strip()
        if not sha:
            raise BadInput(f"unknown commit {base!r} in {self.repo.root}")
        return parse_log(git(path, "log", "-z", "--reverse", _LOG_FORMAT, f"{sha}..HEAD", "--").out)

    def diff(self, branch: str, base: str) -> str:
        """`git diff <base> HEAD` in the branch's worktree: what the branch's new commits changed."""
        path = self.worktrees.existing(branch)
        _check_revision(base)
        return git(path, "diff", base, "HEAD").out

    def changed_paths(self, branch: str, base: str, tip: str) -> list[str]:
        """The paths that differ between the commits `base` and `tip`, in the branch's worktree."""
        path = self.worktrees.existing(branch)
        _check_revision(base)
        _check_revision(tip)
        out = git(path, "diff", "-z", "--name-only", base, tip, "--").out
        return [name for name in out.split("\0") if name]

    def files_changed(self, sha: str, branch: str) -> list[str]:
        """The files a (non-merge) commit changed, the branch's docs page (either form) aside."""
        out = self.repo.out("diff-tree", "-z", "--no-commit-id", "--name-only", "-r", sha)
        pages = set(doc_candidates(branch))
        return [f for f in out.split("\0") if f and f not in pages]

    def reverted_bot_fixes(self, branch: str) -> list[str]:
        """Bot fix commits a human undid, newest first: reverted with `git revert`, or every file
        the fix changed (its docs page aside) is back to its content before the fix."""
        commits = self._own_commits(branch)
        reverted = {m.group(1) for c in commits if c.subject.startswith("Revert ") for m in _REVERTS.finditer(c.body)}
        tip = self.repo.ref(branch)
        return [
            c.sha
            for c in commits
            if c.by_bot and (any(c.sha.startswith(r) for r in reverted) or self._undone(c.sha, tip, branch))
        ]

    def _own_commits(self, branch: str) -> list[Commit]:
        """The branch's commits not on its base, newest first."""
        tip = self.repo.ref(branch)
        base = self.base_branch(branch)
        span = f"{self.repo.ref(base)}..{tip}" if base else tip
        return parse_log(self.repo.out("log", "-z", "--max-count=500", _LOG_FORMAT, span))

    def _undone(self, sha: str, tip: str, branch: str) -> bool:
        parents = self.repo.out("rev-list", "--parents", "-n", "1", sha).split()
        if len(parents) != 2:
            return False  # root or merge commit: not a bot fix
        files = self.files_changed(sha, branch)
        if not files:
            return False
        return self.repo.run("--literal-pathspecs", "diff", "--quiet", parents[1], tip, "--", *files, check=False).ok


def _check_revision(rev: str) -> None:
    # A revision that starts with "-" would be read as an option.
    if not rev or rev.startswith("-"):
        raise BadInput(f"invalid revision: {rev!r}")
