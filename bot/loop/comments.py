"""The PR comment at each stage of the loop: report.py's templates filled in from the loop's
records, and redacted last, after report.py's escaping, just before the text leaves the loop."""

from __future__ import annotations

from typing import Any

from bot.core.secrets import Redactor
from bot.fixers.model import FixProposal
from bot.loop import report
from bot.loop.model import Attempt, Committed, Diagnosed, Outcome, run_json
from bot.runs.model import RunInfo


def next_step(relaunch: bool) -> str:
    return "Re-launching job." if relaunch else "Not relaunching (--no-relaunch)."


def final_step(verified: bool, run: dict[str, Any], verify: dict[str, Any]) -> str:
    """What the final comment says about the relaunched run."""
    if verified:
        return f"Verified: the relaunched run logged {run['steps']} steps with a sane loss ({run['state']})."
    return (
        f"Not verified yet: the relaunched run logged {run['steps']} of {verify['min_steps']} "
        f"steps within {verify['timeout']} s and is still {run['state']}."
    )


class Comments:
    """Every body the loop posts comes from here, redacted with `redactor` as its last step."""

    def __init__(self, secrets: list[str], max_attempts: int):
        self.redactor = Redactor(secrets)
        self.max_attempts = max_attempts

    def safe(self, text: str) -> str:
        return self.redactor.text(text)

    def nothing_to_fix(self, branch: str, run: RunInfo) -> str:
        return self.safe(report.none_body(branch=branch, run=run_json(run)))

    def fix(
        self, found: Diagnosed, committed: Committed, attempt: Attempt, step: str, new_run: dict[str, Any] | None
    ) -> str:
        return self.safe(
            report.fix_body(
                proposal=committed.proposal,
                diagnosis=found.diagnosis,
                next_step=step,
                diff=committed.diff,
                log=found.log_tail,
                attempt=attempt.number,
                max_attempts=self.max_attempts,
                failed_run=run_json(found.run),
                commit=attempt.commit,
                new_run=new_run,
            )
        )

    def relaunch(self, found: Diagnosed, number: int, step: str, new_run: dict[str, Any] | None, why: str) -> str:
        return self.safe(
            report.relaunch_body(
                diagnosis=found.diagnosis,
                next_step=step,
                attempt=number,
                max_attempts=self.max_attempts,
                failed_run=run_json(found.run),
                new_run=new_run,
                why=why,
            )
        )

    def gave_up(self, reason: str, outcome: Outcome) -> str:
        return self.safe(
            report.gave_up_body(
                reason=reason, diagnosis=outcome.diagnosis, attempts=[a.to_json() for a in outcome.attempts]
            )
        )

    def dry_run(self, proposal: FixProposal, found: Diagnosed, diff: str) -> str:
        return self.safe(report.dry_run_body(proposal=proposal, diagnosis=found.diagnosis, diff=diff))
