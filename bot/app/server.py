"""The webhook server: check, read, verify, hand to a handler that records the job, answer.

    POST /webhooks/github   X-Hub-Signature-256 checked with GITHUB_WEBHOOK_SECRET
    POST /webhooks/wandb    Authorization: Bearer WANDB_WEBHOOK_SECRET (+ X-Wandb-Signature if sent)
    GET  /healthz           queue depth and workers
    GET  /, /jobs/{id}      the status page and a job as JSON; GET /metrics (bot.app.operator_routes)

The request path makes no outbound call: a delivery is answered from what it carries and the
queue, whatever GitHub's state. Every request gets a 2xx or a 4xx: a missing or malformed
signature or bearer token is a 401 before the body is read (bot.app.bodies reads it with a size
cap, a deadline and a budget of bytes in flight); a body that is not a JSON object, or lacks a
field a handler needs, is a 400; an event the bot does not act on is a 200 that says so. Each
refusal is one log line.

The request side of each webhook is handed in by the composer (bot.cli's `serve`, the
tests): `router`, a gidgethub router of GitHub handlers dispatched with `queue=`, `receive=`
(bot.app.group_commit: into the queue's inbox, one commit per burst of deliveries; a worker
admits them) and `cleanup=` (and `gh=None`: they make no GitHub call), and
`wandb_handler(payload, queue=...)`, which answers an outcome. The app never imports them.

One `ClientSession` and one `GitHubApp` (token cache, retrying calls) for the life of the app,
made on start-up and closed on clean-up. Worker tasks run the queued jobs: comment jobs are
authorised here (bot.app.comments) by a worker of their own; with an `executor`, more workers
resolve W&B alert jobs into fix jobs and hand fix jobs to `executor(job, github_app=..., stop=...)`.
On shutdown the workers stop taking jobs and running pipelines stop at their next step boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import logging
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from gidgethub import routing, sansio

from bot.app import alerts
from bot.app.alerts import RunsLookup, resolve_wandb_alert
from bot.app.bodies import MAX_BODY, BodyBudget, BodyLimits, Refused, discard_rest, read_body
from bot.app.checks import run_config_check
from bot.app.comments import authorise_comment
from bot.app.executor import FixJobExecutor
from bot.app.github_api import REQUEST_TIMEOUT, RetryPolicy
from bot.app.github_auth import GitHubApp, check_app_credentials
from bot.app.group_commit import GroupCommit, checkpoints
from bot.app.jobs import AlertJob, BadPayload, CommentJob, ConfigCheckJob, Job
from bot.app.logs import QuietProbesAccessLogger
from bot.app.logs import configure as configure_logging
from bot.app.metrics import METRICS, WEBHOOK_OUTCOME, WebhookOutcome
from bot.app.operator_routes import add_operator_routes
from bot.app.queue import Enqueued, Queue
from bot.app.watcher import WATCH_POLL_S, Watcher
from bot.app.workers import Execute, Workers, start_workers, workers_from_env
from bot.core.errors import OperationFailed
from bot.core.locks import exclusive
from bot.core.secrets import Redactor
from bot.core.settings import Settings
from bot.launchers.sandbox import serve_settings
from bot.repo.workspace import Workspace
from bot.runs.model import ACTIVE_STATES
from bot.store.runs import StateStore

log = logging.getLogger(__name__)

APP_EVENTS = frozenset({"installation", "installation_repositories"})
SHUTDOWN_TIMEOUT_S = 2.0  # for requests in flight at SIGTERM; the workers get STOP_GRACE_S after it

# What the headers must look like before the body is read (anything else, non-ASCII included: refused).
GITHUB_SIGNATURE = re.compile(r"sha256=[0-9a-fA-F]{64}")
WANDB_SIGNATURE = re.compile(r"(?:sha256=)?[0-9a-fA-F]{64}")
BEARER = re.compile(r"Bearer ([\x21-\x7e]{1,512})")
EVENT_NAME = re.compile(r"[a-z_]{1,64}")
DELIVERY_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")

SETTINGS = web.AppKey("settings", Settings)
QUEUE = web.AppKey("queue", Queue)
GITHUB_APP = web.AppKey("github_app", GitHubApp)
SESSION = web.AppKey("session", aiohttp.ClientSession)
STOPPING = web.AppKey("stopping", threading.Event)
BODY_LIMITS = web.AppKey("body_limits", BodyLimits)
BODY_BUDGET = web.AppKey("body_budget", BodyBudget)
ACT_ONLY_IF: web.AppKey[dict[str, bytes]] = web.AppKey("act_only_if")
GROUP_COMMIT = web.AppKey("group_commit", GroupCommit)
Executor = Callable[..., Awaitable[None]]  # executor(job, github_app=..., stop=...)
WandbHandler = Callable[..., Enqueued | None]  # wandb_handler(payload, queue=...); None: ignored
Cleanup = Callable[[str, str], Any]  # cleanup(repo, branch), async or blocking

WORKERS = web.AppKey("workers", Workers)
WATCHER = web.AppKey("watcher", Watcher)
ROUTER = web.AppKey("router", routing.Router)
CLEANUP: web.AppKey[Cleanup | None] = web.AppKey("cleanup")
WANDB_HANDLER: web.AppKey[WandbHandler] = web.AppKey("wandb_handler")


def make_app(
    settings: Settings,
    *,
    queue: Queue,
    router: routing.Router,
    wandb_handler: WandbHandler,
    executor: Executor | None = None,
    session: aiohttp.ClientSession | None = None,
    runs_lookup: RunsLookup | None = None,
    cleanup: Cleanup | None = None,
    workers: int = 2,
    comment_workers: int = 1,
    github_retry: RetryPolicy = RetryPolicy(),
    body_limits: BodyLimits = BodyLimits(),
    act_only_if: Mapping[str, bytes] | None = None,
    watch_poll_s: float = WATCH_POLL_S,
) -> web.Application:
    """The aiohttp application. Raises BadInput when the App's credentials or secret are missing
    or unusable (an App id that is not a number, a private key that does not parse).

    Without an `executor` only the comment workers run (fix and alert jobs stay queued).
    `act_only_if` (from the handlers: event -> bytes) lets a delivery of that event whose body
    lacks those bytes be acknowledged without being parsed."""
    check_app_credentials(settings)
    if not settings.wandb_webhook_secret:
        log.warning("WANDB_WEBHOOK_SECRET is not set: /webhooks/wandb will refuse every request")
    app = web.Application(client_max_size=MAX_BODY)
    app[SETTINGS], app[QUEUE], app[CLEANUP] = settings, queue, cleanup
    app[GROUP_COMMIT] = GroupCommit(queue)
    app[ROUTER], app[WANDB_HANDLER] = router, wandb_handler
    app[BODY_LIMITS], app[BODY_BUDGET] = body_limits, BodyBudget(body_limits.budget_bytes)
    app[STOPPING] = threading.Event()
    app[ACT_ONLY_IF] = dict(act_only_if or {})
    app.router.add_post("/webhooks/github", github_webhook)
    app.router.add_post("/webhooks/wandb", wandb_webhook)
    app.router.add_get("/healthz", healthz)
    add_operator_routes(app, settings, queue)
    app.on_shutdown.append(_stop_taking_jobs)
    app.cleanup_ctx.append(_checkpoint_context)
    app.cleanup_ctx.append(functools.partial(_github_context, session=session, retry=github_retry))
    execute = functools.partial(execute_job, app, executor=executor, runs_lookup=runs_lookup)
    general = workers if executor is not None else 0
    app.cleanup_ctx.append(functools.partial(_workers_context, execute=execute, n=general, comments=comment_workers))
    if executor is not None:  # only a server that runs fix jobs has jobs that wait
        app[WATCHER] = Watcher(settings, queue, poll_s=watch_poll_s)
        app.cleanup_ctx.append(_watcher_context)
    return app


async def _github_context(
    app: web.Application, *, session: aiohttp.ClientSession | None, retry: RetryPolicy
) -> AsyncIterator[None]:
    own = session is None
    app[SESSION] = session or aiohttp.ClientSession(timeout=REQUEST_TIMEOUT, trace_configs=[app[METRICS].trace()])
    app[GITHUB_APP] = GitHubApp(app[SETTINGS], app[SESSION], retry=retry)
    yield
    if own:
        await app[SESSION].close()


async def _checkpoint_context(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(checkpoints(app[QUEUE]), name="checkpoints")
    yield
    task.cancel()  # it checkpoints once more on its way out
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _workers_context(app: web.Application, *, execute: Execute, n: int, comments: int) -> AsyncIterator[None]:
    app[WORKERS] = start_workers(app[QUEUE], execute, n, stopping=app[STOPPING], comment_workers=comments)
    yield
    await app[WORKERS].stop()


async def _watcher_context(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[WATCHER].run(app[STOPPING]), name="watcher")
    yield
    app[STOPPING].set()
    try:  # a sweep in flight is cut: the waits are in the store, the next start looks again
        await asyncio.wait_for(task, timeout=1.0)
    except (asyncio.TimeoutError, asyncio.CancelledError):
        pass


async def _stop_taking_jobs(app: web.Application) -> None:
    """At SIGTERM, before the server waits for its connections: jobs start stopping at once."""
    app[STOPPING].set()
    app[QUEUE].wake()


async def execute_job(
    app: web.Application, job: Job, *, executor: Executor | None, runs_lookup: RunsLookup | None
) -> None:
    payload = job.payload
    if isinstance(payload, CommentJob):
        gh = await app[GITHUB_APP].gh_for_installation(payload.installation_id)
        await authorise_comment(job, gh, queue=app[QUEUE], redactor=Redactor.from_settings(app[SETTINGS]))
        return
    if isinstance(payload, ConfigCheckJob):
        await run_config_check(await app[GITHUB_APP].gh_for_installation(payload.installation_id), payload)
        return
    if isinstance(payload, AlertJob):
        if runs_lookup is None:
            raise RuntimeError("a W&B alert arrived but the server has no W&B run lookup configured")
        await resolve_wandb_alert(
            payload,
            runs_lookup=runs_lookup,
            gh_factory=app[GITHUB_APP].for_repo,
            jobs=app[QUEUE],
            github_api_url=app[SETTINGS].github_api_url,
        )
        return
    if executor is None:
        raise RuntimeError("a fix job was claimed by a server that runs none")
    await executor(job, github_app=app[GITHUB_APP], stop=app[STOPPING])


async def github_webhook(request: web.Request) -> web.StreamResponse:
    try:
        delivery = await signed_delivery(request)
        act_only_if: dict[str, bytes] = request.app[ACT_ONLY_IF]
        if not may_concern_the_bot(delivery, act_only_if):
            return ignored(delivery.event)
        event = delivery.parse()
    except Refused as refused:
        return await reject(request, refused)
    router = request.app[ROUTER]
    if not router.fetch(event):
        return ignored(event.event)
    try:
        # No handler calls GitHub: the request side only checks and records (the inbox).
        await router.dispatch(
            event,
            None,
            queue=request.app[QUEUE],
            receive=request.app[GROUP_COMMIT].receive,
            cleanup=request.app[CLEANUP],
        )
    except BadPayload as exc:
        return await reject(request, Refused(400, f"{event.event} payload: {exc}"))
    return answer({"handled": event.event, "delivery": event.delivery_id})


def ignored(event: str) -> web.Response:
    return answer({"ignored": event}, WebhookOutcome.IGNORED)


def answer(data: dict[str, Any], outcome: WebhookOutcome = WebhookOutcome.HANDLED) -> web.Response:
    """A webhook's JSON answer (orjson: the stdlib's encoder was ~2% of a command's CPU), marked
    with its outcome for the metrics, which need not read the body back."""
    response = web.Response(body=orjson.dumps(data), content_type="application/json")
    response[WEBHOOK_OUTCOME] = outcome
    return response


@dataclass(frozen=True)
class SignedDelivery:
    """A GitHub delivery whose signature matched its body; not parsed yet."""

    event: str
    delivery_id: str
    body: bytes

    def parse(self) -> sansio.Event:
        """The event, or Refused(400) when the body is not a JSON object."""
        data = json_object(self.body)
        if not isinstance(data.get("action", ""), str):
            raise Refused(400, "'action' must be a string")
        return sansio.Event(data, event=self.event, delivery_id=self.delivery_id)


def may_concern_the_bot(delivery: SignedDelivery, act_only_if: Mapping[str, bytes]) -> bool:
    """False when the handlers said that an event of this kind matters only with some bytes in its
    body (a comment that does not name the command), and they are not there: acknowledged unparsed."""
    needed = act_only_if.get(delivery.event)
    return needed is None or needed in delivery.body


async def signed_delivery(request: web.Request) -> SignedDelivery:
    """The signed delivery, or Refused. The headers are checked before a byte of the body is read."""
    headers = request.headers
    signature = headers.get("X-Hub-Signature-256", "")
    if not GITHUB_SIGNATURE.fullmatch(signature):
        raise Refused(401, "missing or malformed X-Hub-Signature-256")
    event, delivery = headers.get("X-GitHub-Event", ""), headers.get("X-GitHub-Delivery", "")
    if not EVENT_NAME.fullmatch(event) or not DELIVERY_ID.fullmatch(delivery):
        raise Refused(400, "missing or malformed X-GitHub-Event or X-GitHub-Delivery")
    if request.content_type != "application/json":
        raise Refused(415, "the webhook must send application/json (the App's content type setting)")
    body = await read_body(request, request.app[BODY_LIMITS], request.app[BODY_BUDGET])
    secret = (request.app[SETTINGS].github_webhook_secret or "").encode()
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature.removeprefix("sha256=").lower(), expected):
        raise Refused(401, "the signature does not match the body")
    return SignedDelivery(event, delivery, body)


async def wandb_webhook(request: web.Request) -> web.StreamResponse:
    secret = request.app[SETTINGS].wandb_webhook_secret
    if not secret:
        return await reject(request, Refused(404, "W&B webhooks are not configured (WANDB_WEBHOOK_SECRET)"))
    try:
        payload = await wandb_payload(request, secret)
        enqueued = request.app[WANDB_HANDLER](payload, queue=request.app[QUEUE])
    except Refused as refused:
        return await reject(request, refused)
    except BadPayload as exc:
        return await reject(request, Refused(400, f"W&B payload: {exc}"))
    if enqueued is None:
        return answer({"outcome": WebhookOutcome.IGNORED.value}, WebhookOutcome.IGNORED)
    return answer({"outcome": enqueued.outcome.value})


async def wandb_payload(request: web.Request, secret: str) -> Any:
    """The authorised body, parsed; Refused otherwise. The bearer token is checked before the body
    is read, the body's HMAC (when W&B sends one) after."""
    headers = request.headers
    bearer = BEARER.fullmatch(headers.get("Authorization", ""))
    if bearer is None or not hmac.compare_digest(bearer[1].encode(), secret.encode()):
        raise Refused(401, "missing or wrong bearer token")
    signature = headers.get("X-Wandb-Signature")
    if signature is not None and not WANDB_SIGNATURE.fullmatch(signature):
        raise Refused(401, "malformed X-Wandb-Signature")
    body = await read_body(request, request.app[BODY_LIMITS], request.app[BODY_BUDGET])
    if signature is not None:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature.removeprefix("sha256=").lower(), expected):
            raise Refused(401, "the signature does not match the body")
    return json_object(body)


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object (UTF-8, whatever charset the header claims), or Refused(400)."""
    try:
        data = orjson.loads(body)  # a fifth of a command's CPU with json.loads (13 kB comment)
    except orjson.JSONDecodeError as exc:  # also bad UTF-8, nesting past 1024, ints past 64 bits
        raise Refused(400, f"the body is not JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise Refused(400, f"the body must be a JSON object, not {type(data).__name__}")
    return data


async def reject(request: web.Request, refused: Refused) -> web.StreamResponse:
    """The answer to a request the server will not act on: one log line, the answer sent, what the
    client still sends of its body dropped for a moment (bot.app.bodies.discard_rest; not when it
    was all read, nor from a client too slow to send it in time), and the connection closed
    (aiohttp would linger for 10 s)."""
    delivery = request.headers.get("X-GitHub-Delivery", "")[:64]
    log.warning(
        "%s %s refused, %d: %s (delivery %r)", request.method, request.path, refused.status, refused.reason, delivery
    )
    response = web.json_response({"error": refused.reason}, status=refused.status)
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    if refused.status != 408 and not request.content.is_eof():
        await discard_rest(request)
    if request.transport is not None:
        request.transport.close()  # flushes the answer first
    return response


async def healthz(request: web.Request) -> web.Response:
    workers = request.app.get(WORKERS)
    body: dict[str, Any] = {
        "status": "ok",
        "queue": request.app[QUEUE].depth(),
        "workers": workers.general if workers is not None else 0,
        "comment_workers": len(workers) - workers.general if workers is not None else 0,
        "busy": workers.busy if workers is not None else 0,
        "peak_busy": workers.peak_busy if workers is not None else 0,
        "stopping": request.app[STOPPING].is_set(),
    }
    return web.json_response(body)


def run(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    router: routing.Router,
    wandb_handler: WandbHandler,
    workers: int | None = None,
    act_only_if: Mapping[str, bytes] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT; the queue lives in `settings.state_dir / "state.db"`.
    `workers`: how many fix workers; by default FIX_AND_RELAUNCH_WORKERS, else 2 (BadInput
    when it is not a whole number from 1 to 64).

    Refuses to start (BadInput) on unusable App credentials; stops within about 10 s: requests in
    flight get SHUTDOWN_TIMEOUT_S, jobs stop at their next step boundary within STOP_GRACE_S."""
    check_app_credentials(settings)
    workers = workers_from_env() if workers is None else workers
    configure_logging(settings.log_format)
    with ExitStack() as held:
        # Start-up requeues every job left running: a second server on the same state
        # would take over the first one's live jobs.
        try:
            held.enter_context(exclusive(settings.state_dir / "server.lock", wait=False))
        except BlockingIOError:
            raise OperationFailed(
                f"another fix-and-relaunch server is using {settings.state_dir}; run one server per state directory"
            ) from None
        settings = serve_settings(settings)  # the sandbox: on by default, its state said in the log
        app = production_app(
            settings, router=router, wandb_handler=wandb_handler, workers=workers, act_only_if=act_only_if
        )
        web.run_app(
            app, host=host, port=port, shutdown_timeout=SHUTDOWN_TIMEOUT_S, access_log_class=QuietProbesAccessLogger
        )


def production_app(
    settings: Settings,
    *,
    router: routing.Router,
    wandb_handler: WandbHandler,
    workers: int = 2,
    act_only_if: Mapping[str, bytes] | None = None,
) -> web.Application:
    """The app with its real parts: the pipeline executor, W&B run lookup, worktree clean-up."""
    queue = Queue.from_settings(settings)
    return make_app(
        settings,
        queue=queue,
        router=router,
        wandb_handler=wandb_handler,
        executor=FixJobExecutor(settings, queue),
        runs_lookup=alerts.runs_lookup(settings),
        cleanup=functools.partial(remove_worktree, settings),
        workers=workers,
        act_only_if=act_only_if,
    )


def remove_worktree(settings: Settings, repo: str, branch: str) -> None:
    """A closed PR's worktree in the bot's clone goes, unless a run still uses it; the branch is kept.

    Blocking (git, SQLite): the handler runs it in a thread.
    """
    clone = settings.state_dir / "repos" / repo
    if not (clone / ".git").exists():
        return
    store = StateStore.open(settings.state_dir)
    try:  # runs in server mode are keyed by the clone's path
        active = store.list_runs(repo=str(clone.resolve()), branch=branch, state=ACTIVE_STATES)
    finally:
        store.close()
    if active:
        log.info("%s#%s keeps its worktree: run %s is still %s", repo, branch, active[0].id, active[0].state)
        return
    Workspace(clone).remove_worktree(branch)
