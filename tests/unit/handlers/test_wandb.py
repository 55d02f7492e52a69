"""The W&B webhook's request side: a valid alert is enqueued, one per project while it waits."""

from __future__ import annotations

import pytest

from bot.app.jobs import AlertJob, BadPayload
from bot.app.queue import EnqueueOutcome, Queue
from handlers.wandb import handle


@pytest.fixture
def queue(tmp_path):
    q = Queue(tmp_path / "state.db")
    yield q
    q.close()


def test_an_alert_is_queued_then_coalesced_while_it_waits(queue):
    payload = {"event_type": "RUN_STATE", "entity": "team", "project": "proj", "author": "ada"}
    assert handle(payload, queue=queue).outcome == EnqueueOutcome.QUEUED
    assert handle(payload, queue=queue).outcome == EnqueueOutcome.BUSY
    [job] = queue.jobs()
    assert job.payload == AlertJob(entity="team", project="proj", author="ada")
    queue.claim()
    assert handle(payload, queue=queue).outcome == EnqueueOutcome.QUEUED  # one waits again while the first runs


def test_other_events_are_ignored_and_bad_payloads_refused(queue):
    assert handle({"event_type": "ADD_ARTIFACT_ALIAS", "entity": "t", "project": "p"}, queue=queue) is None
    with pytest.raises(BadPayload):
        handle({"event_type": "RUN_FAILED", "entity": "${entity_name}", "project": "p"}, queue=queue)
    assert queue.jobs() == []
