"""What a wait reports on each poll, so whoever started it can show progress.

The loop's waits (`launch --wait`, watching a relaunched run, a job queued on a cluster) call
an `OnPoll` with a `Poll` each time they look at the run; they do not render anything. The
command line turns polls into a live line or a heartbeat (`bot.cli.progress`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Poll:
    """Where a watched run stands at one poll."""

    run_id: str
    state: str  # queued | running | finished | failed | crashed | killed
    steps: int | None = None  # history steps logged so far, when known
    target: int | None = None  # the steps the wait is for (verify.min_steps), if any
    loss: float | None = None  # the latest logged loss, when known


OnPoll = Callable[[Poll], None]


def ignore_poll(poll: Poll) -> None:
    """The OnPoll of a wait nobody watches."""


def latest_loss(rows: Iterable[Mapping[str, Any]]) -> float | None:
    """The last finite `loss` (or first key naming a loss) in history rows, oldest first."""
    for row in reversed(list(rows)):
        key = "loss" if "loss" in row else next((k for k in row if "loss" in k and not k.startswith("_")), None)
        value = row.get(key) if key else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None
