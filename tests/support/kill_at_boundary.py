"""Run the command line, SIGKILLing this very process at its Nth step boundary: a test harness
for kill -9 sweeps (the project's code runs unchanged; only these calls are watched).

    python -m tests.support.kill_at_boundary N COUNT_FILE -- fix --repo … --branch …

A boundary is each point where a kill leaves a different state behind: before a journaled step's
action runs, after it ran but before it is journaled, and after it is journaled (StepLog.once);
inside the commit step, once the patched files are on disk and not yet committed
(Publisher.commit); and inside the relaunch, once the job started and before its handle is
stored (LocalLauncher.launch returned, `start_run` has not recorded it). With N = 0 nothing is
killed; COUNT_FILE gets the number of boundaries passed, and the names of the last ones, so a
sweep knows how far to go.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from bot.cli.main import main
from bot.launchers.base import Handle, LaunchSpec
from bot.launchers.local import LocalLauncher
from bot.loop.journal import StepLog
from bot.repo.publish import Publisher

passed: list[str] = []


def boundary(name: str, target: int, count_file: str) -> None:
    passed.append(name)
    with open(count_file, "w") as out:
        out.write(f"{len(passed)}\n" + "\n".join(passed) + "\n")
    if len(passed) == target:
        os.kill(os.getpid(), signal.SIGKILL)


def watch(target: int, count_file: str) -> None:
    once, commit, launch = StepLog.once, Publisher.commit, LocalLauncher.launch

    def watched_once(self: StepLog, key: Any, action: Callable[[], Any]) -> Any:
        if self.done(key):
            return once(self, key, action)

        def run() -> Any:
            boundary(f"before {key}", target, count_file)
            value = action()
            boundary(f"ran {key}, not journaled", target, count_file)
            return value

        value = once(self, key, run)
        boundary(f"journaled {key}", target, count_file)
        return value

    def watched_commit(self: Publisher, *args: Any, **kwargs: Any) -> str:
        boundary("patched files on disk, not committed", target, count_file)
        return commit(self, *args, **kwargs)

    def watched_launch(self: LocalLauncher, spec: LaunchSpec) -> Handle:
        handle = launch(self, spec)
        boundary("job started, its handle not stored", target, count_file)
        return handle

    StepLog.once = watched_once  # type: ignore[method-assign]
    Publisher.commit = watched_commit  # type: ignore[method-assign]
    LocalLauncher.launch = watched_launch  # type: ignore[method-assign]


if __name__ == "__main__":
    target, count_file, separator, *argv = sys.argv[1:]
    assert separator == "--", "usage: kill_at_boundary N COUNT_FILE -- COMMAND…"
    watch(int(target), count_file)
    sys.exit(main(argv))
