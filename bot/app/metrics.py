"""`GET /metrics`: the server's figures in Prometheus' text format (prometheus-client).

Counted as they happen, in this process: webhook deliveries by event and outcome (a
middleware), and GitHub API calls and errors (an aiohttp trace on the App's session).
Read from the state database at each scrape, so they survive restarts and cost nothing on
the request path: jobs by status (the queue depth is `queued`), step durations (the time
from a job's previous step, or from its queueing, to the step's record) and the LLM's
tokens and cost (the journaled decisions), and how fix jobs ended (the outcome the fix job executor journals).

Each app has a registry of its own (not prometheus-client's global one): two apps in one
test process never share counts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from bot.app import job_views
from bot.app.jobs import TextEnum
from bot.app.queue import Queue
from bot.loop.model import Step

PREFIX = "fix_and_relaunch"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
WEBHOOK_PATHS = {"/webhooks/github": "github", "/webhooks/wandb": "wandb"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Metrics:
    """The live counters of one app, and the registry /metrics renders."""

    registry: CollectorRegistry
    webhooks: Counter
    github_calls: Counter
    github_errors: Counter

    @classmethod
    def create(cls, queue: Queue) -> Metrics:
        registry = CollectorRegistry(auto_describe=True)
        registry.register(QueueCollector(queue))
        return cls(
            registry=registry,
            webhooks=Counter(
                f"{PREFIX}_webhooks",
                "Webhook deliveries by source, event and outcome (handled, ignored, refused)",
                ["source", "event", "outcome"],
                registry=registry,
            ),
            github_calls=Counter(
                f"{PREFIX}_github_api_requests",
                "GitHub API requests by method and status class",
                ["method", "status"],
                registry=registry,
            ),
            github_errors=Counter(
                f"{PREFIX}_github_api_errors",
                "GitHub API requests that failed: an error status (4xx, 5xx) or no answer (connection)",
                ["kind"],
                registry=registry,
            ),
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def trace(self) -> aiohttp.TraceConfig:
        """Counts each request of a session it is given to (the App's: GitHub only)."""
        config = aiohttp.TraceConfig()

        async def on_end(
            session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestEndParams
        ) -> None:
            status = params.response.status
            self.github_calls.labels(params.method, f"{status // 100}xx").inc()
            if status >= 400:
                self.github_errors.labels(f"{status // 100}xx").inc()

        async def on_exception(
            session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestExceptionParams
        ) -> None:
            self.github_calls.labels(params.method, "none").inc()
            self.github_errors.labels("connection").inc()

        config.on_request_end.append(on_end)
        config.on_request_exception.append(on_exception)
        return config

    @web.middleware
    async def count_webhooks(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        source = WEBHOOK_PATHS.get(request.path)
        response = await handler(request)
        if source is None:
            return response
        event = request.headers.get("X-GitHub-Event", "")[:64] if source == "github" else "alert"
        self.webhooks.labels(source, event or "unknown", webhook_outcome(response)).inc()
        return response


class WebhookOutcome(TextEnum):
    """What became of a delivery: the `outcome` label of the webhook counter."""

    HANDLED = "handled"
    IGNORED = "ignored"
    REFUSED = "refused"


# The mark a webhook's answer carries for `count_webhooks`, which need not read the body back.
WEBHOOK_OUTCOME = web.ResponseKey("webhook_outcome", WebhookOutcome)


def webhook_outcome(response: web.StreamResponse) -> WebhookOutcome:
    if response.status >= 400:
        return WebhookOutcome.REFUSED
    return response.get(WEBHOOK_OUTCOME, WebhookOutcome.HANDLED)


class QueueCollector(Collector):
    """The figures read from the state database at each scrape."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue

    def collect(self) -> Iterable[Metric]:
        depth = self.queue.depth()
        jobs = GaugeMetricFamily(
            f"{PREFIX}_jobs", "Jobs by status; received: deliveries in the inbox, not admitted yet", labels=["status"]
        )
        for status, count in depth.items():
            jobs.add_metric([status], count)
        yield jobs
        yield GaugeMetricFamily(f"{PREFIX}_queue_depth", "Jobs waiting for a worker", value=depth.get("queued", 0))
        yield from self._steps()

    def _steps(self) -> Iterator[Metric]:
        conn = self.queue.db.connection
        started = job_views.job_started(conn)
        durations: dict[str, list[float]] = defaultdict(list)
        tokens = {"input": 0, "output": 0}
        cost = 0.0
        outcomes: dict[str, int] = defaultdict(int)
        previous: tuple[int, float] | None = None
        for job_id, step in job_views.all_steps(conn):
            since = previous[1] if previous and previous[0] == job_id else started.get(job_id, step.recorded_at)
            durations[step.step].append(max(0.0, step.recorded_at - since))
            previous = (job_id, step.recorded_at)
            if step.name == job_views.OUTCOME_STEP and isinstance(step.data, dict):
                outcomes[job_views.outcome_words(str(step.data.get("action")), bool(step.data.get("verified")))] += 1
            if step.step == Step.DECISION:
                use = job_views.decision_use(step.data)
                tokens["input"] += use.input_tokens
                tokens["output"] += use.output_tokens
                cost += use.cost_usd
        summary = SummaryMetricFamily(
            f"{PREFIX}_step_duration_seconds",
            "Time to each journaled step, from the job's previous step (or its queueing)",
            labels=["step"],
        )
        for name, values in sorted(durations.items()):
            summary.add_metric([name], count_value=len(values), sum_value=sum(values))
        yield summary
        llm_tokens = CounterMetricFamily(f"{PREFIX}_llm_tokens", "Tokens the LLM fixer used", labels=["direction"])
        for direction, count in tokens.items():
            llm_tokens.add_metric([direction], count)
        yield llm_tokens
        yield CounterMetricFamily(f"{PREFIX}_llm_cost_usd", "What the LLM fixer cost, in US dollars", value=cost)
        fixes = CounterMetricFamily(
            f"{PREFIX}_fix_outcomes", "How fix jobs ended (verified, gave up, …)", labels=["outcome"]
        )
        for outcome, count in sorted(outcomes.items()):
            fixes.add_metric([outcome], count)
        yield fixes


METRICS = web.AppKey("metrics", Metrics)


async def metrics_endpoint(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
