"""What is known about how a run ended, apart from its log: structured evidence for the diagnosis.

A job killed by a signal often prints nothing about it: Python dies from SIGTERM or SIGKILL
without a traceback. Its exit status (128 + the signal, as a shell and the bot's supervisor
report it), the scheduler's verdict, the kernel's OOM-kill count and the loss curve say what
the log does not.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

SIGNAL_BASE = 128  # a shell's exit status for "killed by signal N" is 128 + N


@dataclass(frozen=True)
class RunFacts:
    exit_code: int | None = None  # the job's exit status (launcher, scheduler or W&B exit record)
    scheduler: str | None = None  # the scheduler's word on the end: PREEMPTED, NODE_FAIL, OUT_OF_MEMORY, …
    oom_kills: int = 0  # OOM kills the kernel counted in the job's memory cgroup while it ran
    loss_problem: str | None = None  # the history's verdict: a non-finite or exploded loss (bot.runs.loss)
    loss_rising: bool = False  # the loss ended above its start or rose over its last rows

    @property
    def signal(self) -> int | None:
        """The signal that killed the job, read from its exit status."""
        code = self.exit_code
        if code is None or not SIGNAL_BASE < code < SIGNAL_BASE + 65:
            return None
        return code - SIGNAL_BASE

    def signal_name(self) -> str:
        number = self.signal
        if number is None:
            return ""
        try:
            return signal.Signals(number).name
        except ValueError:
            return f"signal {number}"

    def exit_line(self) -> str | None:
        """How the job ended, as one line for the evidence."""
        if self.exit_code is None:
            return None
        name = self.signal_name()
        return f"exit code {self.exit_code}" + (f" (killed by {name})" if name else "")
