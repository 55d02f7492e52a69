"""The step journal: what a job already did, so a resumed job never commits, pushes, comments
or launches twice.

Keys are typed (`StepKey`: a `Step`, scoped to the job, one attempt or one run). They persist
as the strings earlier versions wrote — "target", "3:commit", "deleted:<run id>" — so the
server's `job_steps` rows and the CLI's `fix-steps/*.json` files keep resuming.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bot.core.files import write_atomic
from bot.loop.model import ATTEMPT_STEPS, EFFECT_STEPS, RUN_STEPS, Step

T = TypeVar("T")
Save = Callable[[str, Any], None]


@dataclass(frozen=True)
class StepKey:
    step: Step
    attempt: int | None = None  # for a per-attempt step
    run: str | None = None  # for a per-run step: the run it is about

    def __post_init__(self) -> None:
        if (self.attempt is not None) != (self.step in ATTEMPT_STEPS):
            raise ValueError(f"step {self.step.value!r} {'needs' if self.attempt is None else 'takes no'} attempt")
        if (self.run is not None) != (self.step in RUN_STEPS):
            raise ValueError(f"step {self.step.value!r} {'needs' if self.run is None else 'takes no'} run")

    def __str__(self) -> str:
        if self.attempt is not None:
            return f"{self.attempt}:{self.step.value}"
        if self.run is not None:
            return f"{self.step.value}:{self.run}"
        return self.step.value

    @classmethod
    def parse(cls, text: str) -> StepKey | None:
        """The key a persisted name stands for; None for a name this version does not know."""
        head, colon, tail = text.partition(":")
        try:
            if head.isdigit():
                return cls(Step(tail), attempt=int(head))
            if colon:
                return cls(Step(head), run=tail)
            return cls(Step(head))
        except ValueError:
            return None

    @property
    def begun(self) -> bool:
        """Whether this step's record means something outside the process was started."""
        return self.attempt is not None and self.step in EFFECT_STEPS


Key = StepKey | Step | str  # a plain string must name a known step ("attempts_used")


class StepLog:
    """What a job already did. In memory by default; the server passes a persistent one."""

    def __init__(self, load: Callable[[], dict[str, Any]] | None = None, save: Save | None = None):
        self._done: dict[StepKey, Any] = {}
        self._unknown: dict[str, Any] = {}  # rows of steps this version does not know, kept as they are
        for name, value in (load() if load else {}).items():
            key = StepKey.parse(name)
            if key is None:
                self._unknown[name] = value
            else:
                self._done[key] = value
        self._save = save

    @classmethod
    def in_file(cls, path: Path) -> StepLog:
        """A step log kept in a JSON file, rewritten whole (atomically) after each step."""

        def load() -> dict[str, Any]:
            return json.loads(path.read_text()) if path.exists() else {}

        log = cls(load=load)
        log._save = lambda name, value: write_atomic(path, json.dumps(log.rows(), default=str))
        return log

    def rows(self) -> dict[str, Any]:
        """Everything recorded, by persisted name."""
        return {**self._unknown, **{str(key): value for key, value in self._done.items()}}

    def done(self, key: Key) -> bool:
        return _key(key) in self._done

    def started(self) -> bool:
        """Whether anything with an effect outside the process was begun (a patch, a launch)."""
        return any(key.begun for key in self._done)

    def once(self, key: Key, action: Callable[[], T]) -> T:
        """`action()`'s value, recorded under `key`; the recorded value when there is one."""
        typed = _key(key)
        if typed in self._done:
            return self._done[typed]
        value = action()
        self._done[typed] = value
        if self._save:
            self._save(str(typed), value)
        return value


def _key(key: Key) -> StepKey:
    if isinstance(key, StepKey):
        return key
    if isinstance(key, Step):
        return StepKey(key)
    parsed = StepKey.parse(key)
    if parsed is None:
        raise ValueError(f"not a step name: {key!r}")
    return parsed
