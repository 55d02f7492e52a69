"""The bot's messages on a pull request. Each carries a hidden marker, so the bot recognises its
own comments (and never takes one for a command) and finds a job's comment again to edit it.

The job comment's first body is DIAGNOSING, posted when a worker picks the job up. Later
bodies (fix pushed, relaunched, verified, gave up) are rendered by bot.loop.report and
delivered under the same job marker, so the one comment is edited in place.
"""

from __future__ import annotations

from bot.core.secrets import Redactor

MARKER = "<!-- fix-and-relaunch:"  # every message of the bot carries one
JOB_MARKER = "<!-- fix-and-relaunch:job={job_id} -->"

DIAGNOSING = """\
{marker}
🔎 **fix-and-relaunch** is diagnosing the latest failed run of `{branch}`…
"""
NOT_ALLOWED = """\
<!-- fix-and-relaunch:not-allowed -->
@{user} only people with write access to this repository can run `/fix-and-relaunch`.
"""
FORK_NOT_PUSHABLE = """\
<!-- fix-and-relaunch:fork -->
@{user} I can't push to `{head}`: this pull request comes from a fork that does not allow edits \
by maintainers. Tick "Allow edits by maintainers" on the pull request and ask again.
"""
BUSY = """\
<!-- fix-and-relaunch:busy -->
@{user} a fix-and-relaunch job for `{branch}` is already {status} (job {job_id}); \
it will report here. Ask again when it is done.
"""


def render(template: str, redactor: Redactor, **fields: object) -> str:
    """A message filled in and redacted, its last step before it is posted (a branch name or a
    label comes from the payload)."""
    return redactor.text(template.format(**fields))


def job_marker(job_id: int | str) -> str:
    """The marker of one job's comment."""
    return JOB_MARKER.format(job_id=job_id)
