"""Every PR message carries the hidden marker the bot knows its own comments by."""

from __future__ import annotations

import pytest

from bot.app import messages
from bot.app.messages import BUSY, DIAGNOSING, FORK_NOT_PUSHABLE, MARKER, NOT_ALLOWED, job_marker
from handlers.github import from_bot, parse_command


@pytest.mark.parametrize(
    "body",
    [
        NOT_ALLOWED.format(user="ada"),
        FORK_NOT_PUSHABLE.format(user="ada", head="alice:exp-a"),
        BUSY.format(user="ada", branch="exp-a", status="running", job_id=3),
        DIAGNOSING.format(marker=job_marker(3), branch="exp-a"),
    ],
)
def test_each_message_starts_with_a_marker_and_is_never_taken_for_a_command(body):
    assert body.startswith(MARKER)
    assert from_bot({"user": {"type": "User"}, "body": f"/fix-and-relaunch\n{body}"})
    assert parse_command(body) is None


def test_job_markers_differ_per_job():
    assert job_marker(3) == "<!-- fix-and-relaunch:job=3 -->" == messages.JOB_MARKER.format(job_id="3")
    assert job_marker(3) != job_marker(33) and job_marker(3) not in job_marker(33)
