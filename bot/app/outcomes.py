"""How each fix job ended, journaled beside its steps: the status page, `jobs show` and /metrics
say "verified" or "gave up" from it (the job's status only says that it ran to its end)."""

from __future__ import annotations

from bot.app.executor import FixJobExecutor
from bot.app.forge import GitHubForge
from bot.app.job_views import OUTCOME_STEP
from bot.app.jobs import Job
from bot.loop.model import Action, Outcome


class OutcomeRecordingExecutor(FixJobExecutor):
    """The fix job executor, recording the outcome before it reports it on the pull request."""

    async def _conclude(self, forge: GitHubForge, job: Job, outcome: Outcome, marker: str) -> None:
        # Not a pipeline step: a resumed job's journal keeps the row as one it does not know.
        data = {"action": Action(outcome.action).value, "verified": outcome.verified, "reason": outcome.reason}
        self.queue.record_step(job.id, OUTCOME_STEP, data)
        await super()._conclude(forge, job, outcome, marker)
