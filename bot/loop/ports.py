"""What the fix loop needs from the world, as narrow protocols: the branch's git history, its
runs, a launcher, and a few settings. The real ones are the Workspace, BranchRuns and the
launchers; unit tests pass small fakes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from bot.diagnosis.facts import RunFacts
from bot.launchers.sandbox import SandboxContext
from bot.runs.model import RunInfo


class CommitInfo(Protocol):
    @property
    def sha(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def by_bot(self) -> bool: ...  # carries the bot's trailer


class History(Protocol):
    """What the decisions read from a branch's git history."""

    def head(self, branch: str) -> str: ...

    def is_ancestor(self, commit: str, branch: str) -> bool: ...

    def commits_since(self, base: str, branch: str) -> Sequence[CommitInfo]:
        """Oldest first. Raises BotError when `base` is unknown here."""
        ...

    def files_changed(self, sha: str, branch: str) -> list[str]: ...

    def on_remote(self, sha: str, branch: str) -> bool: ...

    def reverted_bot_fixes(self, branch: str) -> list[str]: ...

    def base_branch(self, branch: str) -> str | None: ...


class Publisher(History, Protocol):
    """What applying a fix does to the branch, beyond reading it."""

    def commit(self, branch: str, paths: list[str], message: str) -> str: ...

    def push(self, branch: str) -> None:
        """Fast-forward only; raises PushRejected when the remote branch moved."""
        ...

    def rebase_onto_remote(self, branch: str, paths_that_must_be_unchanged: list[str]) -> bool: ...

    def diff(self, branch: str, base: str) -> str:
        """`git diff base HEAD` in the branch's worktree."""
        ...

    def changed_paths(self, branch: str, base: str, tip: str) -> list[str]: ...


class Runs(Protocol):
    """A branch's runs (BranchRuns)."""

    def get(self, run_id: str) -> RunInfo: ...

    def peek(self, run_id: str) -> RunInfo:
        """The run as it stands, not judged by its loss."""
        ...

    def latest(self, branch: str) -> RunInfo: ...

    def runs(self, branch: str | None = None, state: str | None = None) -> list[RunInfo]: ...

    def history(self, run: RunInfo, rows: int = 10) -> list[dict[str, Any]]: ...

    def loss_rows(self, run: RunInfo, rows: int = 20) -> list[dict[str, Any]]:
        """The run's first history rows and its last `rows`, in step order."""
        ...

    def console_loss_rows(self, run: RunInfo) -> list[dict[str, Any]]:
        """The loss the run's console printed, as rows (its first and its last)."""
        ...

    def facts(self, run: RunInfo, rows: list[dict[str, Any]] | None = None) -> RunFacts:
        """How the run ended apart from its log (exit status, scheduler, OOM kills, loss)."""
        ...

    def baseline_problem(
        self, run: RunInfo, rows: list[dict[str, Any]] | None = None, *, relaunch: bool = False
    ) -> str | None:
        """Why the run's loss is far worse than the base branch's run at the same point (a
        relaunch's: or no better than that run's untrained start), or None."""
        ...

    def baseline_rows(self, run: RunInfo) -> list[dict[str, Any]]:
        """The logged history of the base branch's run the run is compared with ([] for none)."""
        ...

    def log_tail(self, run: RunInfo, lines: int = 200) -> list[str]: ...

    def delete(self, run: RunInfo) -> None: ...


class Launcher(Protocol):
    """Starts and stops the branch's job under an id the loop chose."""

    def launched(self, run_id: str) -> bool:
        """Whether a run with this id was launched already (a crash came before it was journaled)."""
        ...

    def launch(self, run_id: str) -> str:
        """Start the branch's job as run `run_id`; raises OperationFailed when it cannot."""
        ...

    def stop(self, run_id: str) -> None:
        """Cancel the run and wait until it ended; raises GiveUp when it does not end in time."""
        ...


class LlmSettings(SandboxContext, Protocol):
    """The settings the decisions read: whether an LLM may write fixes, and what to redact; and
    the sandbox a patch's smoke check runs in."""

    @property
    def anthropic_api_key(self) -> str | None: ...
    @property
    def anthropic_model(self) -> str: ...

    def secrets(self) -> list[str]: ...
