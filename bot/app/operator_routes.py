"""The operator's routes, added to the webhook server's app: the status page (`/`, `/login`,
`/jobs/{id}`) and `/metrics`, behind the status guard, and the webhook counters."""

from __future__ import annotations

from aiohttp import web

from bot.app import status
from bot.app.metrics import METRICS, Metrics, metrics_endpoint
from bot.app.queue import Queue
from bot.core.settings import Settings


def add_operator_routes(app: web.Application, settings: Settings, queue: Queue) -> Metrics:
    """Registers the routes and middlewares; the app's Metrics (also at `app[METRICS]`)."""
    metrics = Metrics.create(queue)
    app[METRICS] = metrics
    app.middlewares.append(status.guard(settings))
    app.middlewares.append(metrics.count_webhooks)
    app.router.add_get("/", status.status_handler(queue, settings))
    app.router.add_get("/login", status.login_form)
    app.router.add_post("/login", status.login_handler(settings))
    app.router.add_get("/jobs/{id}", status.job_handler(queue))
    app.router.add_get("/metrics", metrics_endpoint)
    return metrics
