"""W&B automation webhooks, the request side: validate the alert and enqueue it.

The server has checked the bearer token (and the body's HMAC, when sent). A worker later
resolves the alert into fix jobs: bot.app.alerts.resolve_wandb_alert.
"""

from __future__ import annotations

from typing import Any

from bot.app.jobs import AlertJob
from bot.app.queue import Queue

IGNORED = "ignored"


def handle(payload: Any, *, queue: Queue) -> str:
    """Enqueue the alert: "queued", "busy" (one already waits), or "ignored".

    Raises BadPayload (a ValueError) when the body cannot be an alert."""
    alert = AlertJob.from_payload(payload)
    if alert is None:
        return IGNORED
    return queue.enqueue(alert).outcome.value
