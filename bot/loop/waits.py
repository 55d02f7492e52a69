"""A wait of the fix loop: the relaunched run, queued on its backend or on its way to
`verify.min_steps`, watched until it is judged.

A wait is a state, not a blocked thread. The loop computes it (`Wait`), and then either waits
in-process (the command line: it looks again every `poll_s`, its live line moving) or, parked
(the server), raises `Parked` so that its worker is free: the job is stored as waiting with the
wait's deadline as its due time, one watcher (bot.app.watcher) looks at every waiting run at
once, and the job is queued again when its condition or its deadline is reached. The loop then
runs again from its journal (nothing with an effect is done twice) and, given the wait back
(`Pipeline(wait=...)`), keeps its deadline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.runs.model import ACTIVE_STATES


@dataclass(frozen=True)
class Wait:
    """Waiting for run `run_id` to log `target_steps` steps (or end), until `deadline` (unix s)."""

    run_id: str
    target_steps: int
    deadline: float
    poll_s: float = 1.0  # how often an in-process wait looks again

    def ready(self, state: str, steps: int, now: float) -> bool:
        """Whether the loop has something to judge: the run ended, reached its steps, or time is up."""
        return state not in ACTIVE_STATES or steps >= self.target_steps or now >= self.deadline

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "target_steps": self.target_steps,
            "deadline": self.deadline,
            "poll_s": self.poll_s,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Wait:
        return cls(
            run_id=str(data["run_id"]),
            target_steps=int(data["target_steps"]),
            deadline=float(data["deadline"]),
            poll_s=float(data.get("poll_s", 1.0)),
        )


class Parked(Exception):
    """The loop reached a wait and is parked: every step so far is journaled, and the job resumes
    from its journal once the wait is over. Not an error: the server stores the job as waiting."""

    def __init__(self, wait: Wait):
        super().__init__(f"waiting for run {wait.run_id} to log {wait.target_steps} steps")
        self.wait = wait
