"""The one way the project runs git, and what every git call needs to know about names and remotes.

`git(cwd, *args)` runs every git command the bot issues, through GitPython's `Git.execute`: English messages whatever the locale
(callers match git's text, e.g. `[rejected]`), no stdin, an optional time limit, and on failure
an OperationFailed that quotes git's stderr on one line with URL credentials and the given
secrets masked.

A token for a remote never goes on a command line nor into `.git/config`: `RemoteAuth` turns a
`https://user:token@host/…` clone URL into the clean URL and an HTTP header passed through
`GIT_CONFIG_*` environment variables, which are neither persisted nor shown by `ps`.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import git as gitpython

from bot.core.errors import BadInput, OperationFailed
from bot.core.secrets import strip_credentials

NETWORK_TIMEOUT_S = 300  # fetch, push, clone


@dataclass(frozen=True)
class GitResult:
    """What one git command did. `out` is stdout as written (bytes that are not UTF-8 kept as
    surrogates, so they survive a round trip); `err` is stderr, or why git was stopped."""

    code: int
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    def text(self) -> str:
        """stdout with bytes that are not UTF-8 shown as U+FFFD: for text that leaves the bot."""
        return self.out.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def git(
    cwd: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    secrets: Iterable[str] = (),
    timeout: float | None = None,
) -> GitResult:
    """Run `git <args>` in `cwd`, with `env` added to the bot's environment.

    With `check`, a non-zero exit raises OperationFailed with git's stderr on one line, URL
    credentials and `secrets` masked. Past `timeout` seconds git is killed: the result has a
    negative code and says so in `err` (and raises like any failure under `check`).
    """
    if not Path(cwd).is_dir():  # GitPython would quietly run git in the current folder instead
        raise OperationFailed(f"git {_command(args)} could not start in {cwd}: no such folder")
    # GitPython's execute already runs git in English (LANGUAGE=C, LC_ALL=C) with no stdin
    # and kills it (and its children) past the time limit.
    try:
        code, out, err = gitpython.Git(str(cwd)).execute(
            ["git", *args],
            with_extended_output=True,
            with_exceptions=False,
            env=dict(env or {}),
            stdout_as_string=False,
            strip_newline_in_stdout=False,
            kill_after_timeout=timeout,
        )
    except gitpython.GitCommandNotFound as exc:  # no git, or no such folder
        raise OperationFailed(
            f"git {_command(args)} could not start in {cwd}: "
            f"{getattr(exc.status, 'strerror', None) or type(exc).__name__}"
        ) from None
    result = GitResult(code, _decode(out), _decode(err))
    if timeout is not None and code < 0:
        result = GitResult(code, result.out, f"timed out after {timeout:g} seconds; stopped")
    if check and not result.ok:
        raise OperationFailed(f"git {_command(args)} failed: {one_line(result.err or result.out, secrets)}")
    return result


def one_line(text: str, secrets: Iterable[str] = ()) -> str:
    """git's output as one line for an error message, credentials and `secrets` masked."""
    return " ".join(strip_credentials(text, secrets).split()) or "no output"


def _decode(data: bytes | str | None) -> str:
    if isinstance(data, str):
        return data
    return (data or b"").decode("utf-8", "surrogateescape")


def _command(args: tuple[str, ...]) -> str:
    """The git command's name for messages: its first word that is not an option."""
    return next((a for a in args if not a.startswith("-")), args[0] if args else "")


# -- branch names -----------------------------------------------------------------------------


def check_branch_name(branch: str) -> str:
    """Return `branch` if git accepts it as a branch name and it stays under `.worktrees/`."""
    if (
        not isinstance(branch, str)
        or not branch
        or branch.startswith(("-", "+"))
        or "@{" in branch
        or branch == "HEAD"
        or "\\" in branch
        or any(ord(c) < 32 for c in branch)
    ):
        raise BadInput(f"invalid branch name: {branch!r}")
    if not _git_accepts(branch) or any(part in ("", ".", "..") for part in branch.split("/")):
        raise BadInput(f"invalid branch name: {branch!r}")
    return branch


@functools.lru_cache(maxsize=1024)
def _git_accepts(branch: str) -> bool:
    """git's own verdict on a branch name; asked once per name (every git step checks it)."""
    result = git(Path("/"), "check-ref-format", "--branch", branch, check=False)
    return result.ok and result.out.strip() == branch


# -- remote authentication --------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteAuth:
    """A remote URL without credentials, the environment that authenticates to it, and the
    secrets that must never appear in an error."""

    url: str | None
    env: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()

    @classmethod
    def parse(cls, url: str | None) -> RemoteAuth:
        if not url:
            return cls(None)
        if not isinstance(url, str):
            raise BadInput("a remote URL must be a string")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
            return cls(strip_credentials(url))
        userinfo, host = parts.netloc.rsplit("@", 1)
        user, _, password = (unquote(p) for p in userinfo.partition(":"))
        clean = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        # Scoped to this host; an environment variable is neither persisted nor shown by `ps`.
        env = config_env({f"http.{parts.scheme}://{host}/.extraheader": f"AUTHORIZATION: basic {basic}"})
        return cls(clean, env, tuple(s for s in (password or user, basic) if s))


def config_env(values: Mapping[str, str]) -> dict[str, str]:
    """git configuration for one command, as `GIT_CONFIG_*` variables; never a prompt."""
    env = {"GIT_CONFIG_COUNT": str(len(values)), "GIT_TERMINAL_PROMPT": "0"}
    for i, (key, value) in enumerate(values.items()):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env
