"""The webhook server: verify, hand to a handler that checks and enqueues, answer in milliseconds.

    POST /webhooks/github   X-Hub-Signature-256 checked with GITHUB_WEBHOOK_SECRET
    POST /webhooks/wandb    Authorization: Bearer WANDB_WEBHOOK_SECRET (+ X-Wandb-Signature if sent)
    GET  /healthz           queue depth and workers

The request side of each webhook is handed in by the composer (bot.cli's `serve`, the
tests): `router`, a gidgethub router of GitHub handlers dispatched with `queue=` and
`cleanup=`, and `wandb_handler(payload, queue=...)`, which answers an outcome. The app never
imports them.

One `ClientSession` and one `GitHubApp` (token cache) for the life of the app, made on
start-up and closed on clean-up. When an `executor` is given, worker tasks run the queued
jobs: W&B alert jobs are resolved here into fix jobs, fix jobs go to
`executor(job, github_app=...)`.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import ExitStack
from typing import Any

import aiohttp
import gidgethub
from aiohttp import web
from gidgethub import routing, sansio

from bot.app import alerts
from bot.app.alerts import RunsLookup, resolve_wandb_alert
from bot.app.executor import FixJobExecutor
from bot.app.github_auth import GitHubApp, check_app_settings
from bot.app.jobs import AlertJob, Job
from bot.app.queue import Queue
from bot.app.workers import Execute, Workers, start_workers
from bot.core.errors import OperationFailed
from bot.core.locks import exclusive
from bot.core.settings import Settings
from bot.launchers.sandbox import serve_settings
from bot.repo.workspace import Workspace
from bot.runs.model import ACTIVE_STATES
from bot.store.runs import StateStore

log = logging.getLogger(__name__)

MAX_BODY = 25 * 1024 * 1024  # GitHub caps webhook payloads at 25 MB
APP_EVENTS = frozenset({"installation", "installation_repositories"})

SETTINGS = web.AppKey("settings", Settings)
QUEUE = web.AppKey("queue", Queue)
GITHUB_APP = web.AppKey("github_app", GitHubApp)
SESSION = web.AppKey("session", aiohttp.ClientSession)
Executor = Callable[..., Awaitable[None]]  # executor(job, github_app=...)
WandbHandler = Callable[..., str]  # wandb_handler(payload, queue=...) -> outcome
Cleanup = Callable[[str, str], Any]  # cleanup(repo, branch), async or blocking

WORKERS = web.AppKey("workers", Workers)
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
) -> web.Application:
    """The aiohttp application. Raises BadInput when the App's credentials or secret are missing."""
    check_app_settings(settings)
    if not settings.wandb_webhook_secret:
        log.warning("WANDB_WEBHOOK_SECRET is not set: /webhooks/wandb will refuse every request")
    app = web.Application(client_max_size=MAX_BODY)
    app[SETTINGS], app[QUEUE], app[CLEANUP] = settings, queue, cleanup
    app[ROUTER], app[WANDB_HANDLER] = router, wandb_handler
    app.router.add_post("/webhooks/github", github_webhook)
    app.router.add_post("/webhooks/wandb", wandb_webhook)
    app.router.add_get("/healthz", healthz)
    app.cleanup_ctx.append(functools.partial(_github_context, session=session))
    if executor is not None:
        execute = functools.partial(execute_job, app, executor=executor, runs_lookup=runs_lookup)
        app.cleanup_ctx.append(functools.partial(_workers_context, execute=execute, n=workers))
    return app


async def _github_context(app: web.Application, *, session: aiohttp.ClientSession | None) -> AsyncIterator[None]:
    own = session is None
    app[SESSION] = session or aiohttp.ClientSession()
    app[GITHUB_APP] = GitHubApp(app[SETTINGS], app[SESSION])
    yield
    if own:
        await app[SESSION].close()


async def _workers_context(app: web.Application, *, execute: Execute, n: int) -> AsyncIterator[None]:
    app[WORKERS] = start_workers(app[QUEUE], execute, n)
    yield
    await app[WORKERS].stop()


async def execute_job(app: web.Application, job: Job, *, executor: Executor, runs_lookup: RunsLookup | None) -> None:
    if isinstance(job.payload, AlertJob):
        if runs_lookup is None:
            raise RuntimeError("a W&B alert arrived but the server has no W&B run lookup configured")
        await resolve_wandb_alert(
            job.payload,
            runs_lookup=runs_lookup,
            gh_factory=app[GITHUB_APP].for_repo,
            jobs=app[QUEUE],
            github_api_url=app[SETTINGS].github_api_url,
        )
        return
    await executor(job, github_app=app[GITHUB_APP])


async def github_webhook(request: web.Request) -> web.Response:
    body = await request.read()  # over client_max_size: 413
    try:
        event = sansio.Event.from_http(request.headers, body, secret=request.app[SETTINGS].github_webhook_secret)
    except gidgethub.ValidationFailure as exc:
        log.warning("rejected webhook %s: %s", request.headers.get("X-GitHub-Delivery"), exc)
        return web.json_response({"error": "bad signature"}, status=401)
    except (gidgethub.BadRequest, KeyError) as exc:
        return web.json_response({"error": f"bad request: {exc}"}, status=400)
    router = request.app[ROUTER]
    if not router.fetch(event):
        return web.json_response({"ignored": event.event})
    installation_id = (event.data.get("installation") or {}).get("id")
    if installation_id is None:
        return web.json_response({"ignored": event.event, "reason": "no installation"})
    github_app = request.app[GITHUB_APP]
    try:
        # An installation being deleted has no token to give; its handlers only log.
        gh = (
            github_app.anonymous()
            if event.event in APP_EVENTS
            else await github_app.gh_for_installation(installation_id)
        )
        await router.dispatch(event, gh, queue=request.app[QUEUE], cleanup=request.app[CLEANUP])
    except gidgethub.HTTPException as exc:
        log.exception("delivery %s (%s): GitHub answered %s", event.delivery_id, event.event, exc)
        return web.json_response({"error": f"GitHub API error: {exc}"}, status=502)
    return web.json_response({"handled": event.event, "delivery": event.delivery_id})


async def wandb_webhook(request: web.Request) -> web.Response:
    secret = request.app[SETTINGS].wandb_webhook_secret
    if not secret:
        return web.json_response({"error": "W&B webhooks are not configured"}, status=503)
    body = await request.read()
    if not wandb_authorized(request.headers, body, secret):
        return web.json_response({"error": "unauthorized"}, status=401)
    try:
        outcome = request.app[WANDB_HANDLER](json.loads(body), queue=request.app[QUEUE])
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError and BadPayload are ValueErrors
        return web.json_response({"error": f"bad request: {exc}"}, status=400)
    return web.json_response({"outcome": outcome})


def wandb_authorized(headers: Mapping[str, str], body: bytes, secret: str) -> bool:
    """The bearer token matches, and so does the body's HMAC when a signature is sent."""
    bearer = headers.get("Authorization", "").encode()
    if not hmac.compare_digest(bearer, f"Bearer {secret}".encode()):
        return False
    signature = headers.get("X-Wandb-Signature")
    if signature is None:
        return True
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature.removeprefix("sha256=").lower().encode(), expected.encode())


async def healthz(request: web.Request) -> web.Response:
    workers = request.app.get(WORKERS)
    body: dict[str, Any] = {
        "status": "ok",
        "queue": request.app[QUEUE].depth(),
        "workers": len(workers) if workers is not None else 0,
        "busy": workers.busy if workers is not None else 0,
    }
    return web.json_response(body)


def run(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    router: routing.Router,
    wandb_handler: WandbHandler,
    workers: int = 2,
) -> None:
    """Serve until interrupted; the queue lives in `settings.state_dir / "state.db"`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
        app = production_app(settings, router=router, wandb_handler=wandb_handler, workers=workers)
        web.run_app(app, host=host, port=port)


def production_app(
    settings: Settings, *, router: routing.Router, wandb_handler: WandbHandler, workers: int = 2
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
