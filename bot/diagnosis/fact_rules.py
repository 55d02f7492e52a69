"""Structured run facts as classifier rules: how the job ended (signal, scheduler, OOM kills)
and what its loss did. Each fact gives at most one (rule, evidence line) pair.

- The scheduler's verdict: preemption, node failure, a requeued job's time limit → infra
  (relaunch unchanged); OUT_OF_MEMORY → oom.
- The kernel's OOM killer counted kills in the job's memory cgroup → oom.
- Killed by SIGTERM (exit 143): stopped from outside (preemption, a time limit, a shutdown) →
  infra. By SIGKILL (exit 137) with no sign of running out of memory → infra, weighted below
  every OOM signal of the log so that one wins when present.
- A non-finite or exploded loss → nan_loss, strongly unless an unrelated exception ended the
  run; a merely rising loss counts only beside a numeric crash (an overflow in `math.exp(loss)`).
"""

from __future__ import annotations

import re

from bot.diagnosis.facts import RunFacts
from bot.diagnosis.rules import Rule, numeric_failure
from bot.diagnosis.tracebacks import ParsedTraceback

INFRA_VERDICTS = re.compile(
    r"(?i)\b(?:PREEMPTED|NODE_FAIL|BOOT_FAIL|TIMEOUT|DEADLINE|JOB_SUPERVISOR_ACTOR_\w+|launch was lost)\b"
)
OOM_VERDICTS = re.compile(r"(?i)\bOUT_OF_MEMORY\b|\bOOM\b")
# signal → (category, weight, what it means)
SIGNALS: dict[int, tuple[str, float, str]] = {
    15: ("infra", 8.5, "stopped from outside: preemption, a time limit or a shutdown"),
    9: ("infra", 5.0, "no sign in its log or its cgroup of running out of memory"),
    1: ("infra", 7.0, "its session or terminal went away"),
    7: ("infra", 7.0, "a bus error: usually shared memory (/dev/shm) ran out"),
    11: ("infra", 6.0, "a segmentation fault in native code"),
    24: ("infra", 8.0, "its CPU time limit ran out"),
}
SCHEDULER_INFRA = Rule("infra", re.compile("."), 9, True)
SCHEDULER_OOM = Rule("oom", re.compile("."), 10, False)
OOM_KILLED = Rule("oom", re.compile("."), 10, False)
LOSS_STRONG = Rule("nan_loss", re.compile("."), 9, False)
LOSS_WEAK = Rule("nan_loss", re.compile("."), 6.5, False)
_SIGNAL_RULES = {
    number: Rule(category, re.compile("."), weight, True) for number, (category, weight, _) in SIGNALS.items()
}

FactMatch = tuple[Rule, str]


def fact_matches(facts: RunFacts | None, failing: ParsedTraceback | None) -> list[FactMatch]:
    """The facts that say something, as (rule, evidence line)."""
    if facts is None:
        return []
    found = [
        *_scheduler(facts),
        *_oom_kills(facts),
        *_signal(facts),
        *_loss(facts, failing),
    ]
    return found


def _scheduler(facts: RunFacts) -> list[FactMatch]:
    verdict = facts.scheduler
    if not verdict:
        return []
    line = f"the scheduler ended the job: {verdict}"
    if OOM_VERDICTS.search(verdict):
        return [(SCHEDULER_OOM, line)]
    if INFRA_VERDICTS.search(verdict):
        return [(SCHEDULER_INFRA, line)]
    return []


def _oom_kills(facts: RunFacts) -> list[FactMatch]:
    if facts.oom_kills <= 0:
        return []
    return [(OOM_KILLED, f"the kernel's OOM killer killed {facts.oom_kills} process(es) of the job's memory cgroup")]


def _signal(facts: RunFacts) -> list[FactMatch]:
    number = facts.signal
    if number not in _SIGNAL_RULES or number is None:
        return []
    meaning = SIGNALS[number][2]
    return [(_SIGNAL_RULES[number], f"{facts.exit_line()}: {meaning}")]


def _loss(facts: RunFacts, failing: ParsedTraceback | None) -> list[FactMatch]:
    numeric = numeric_failure(failing)
    if facts.loss_problem:
        strong = failing is None or numeric or _ended_by_signal(failing)
        return [(LOSS_STRONG if strong else LOSS_WEAK, f"history: {facts.loss_problem}")]
    if facts.loss_rising and numeric:
        return [(LOSS_STRONG, "history: the loss was rising when the run crashed on a number out of range")]
    return []


def _ended_by_signal(tb: ParsedTraceback) -> bool:
    return bool(re.search(r"KeyboardInterrupt|SystemExit|SignalException", tb.exc_type or ""))
