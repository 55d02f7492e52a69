"""W&B automation webhooks, the request side: validate the alert and enqueue it.

The server has checked the bearer token (and the body's HMAC, when sent). A worker later
resolves the alert into fix jobs: bot.app.alerts.resolve_wandb_alert.
"""

from __future__ import annotations

from typing import Any

from bot.app.jobs import AlertJob
from bot.app.queue import Enqueued, Queue


def handle(payload: Any, *, queue: Queue) -> Enqueued | None:
    """Enqueue the alert: queued, or busy (one already waits); None for an alert the bot ignores.

    Raises BadPayload (a ValueError) when the body cannot be an alert."""
    alert = AlertJob.from_payload(payload)
    if alert is None:
        return None
    return queue.enqueue(alert)
