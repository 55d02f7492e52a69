"""The operator's view: the status page at `/` (server-rendered HTML, every value escaped),
`GET /jobs/{id}` as JSON, and the guard in front of them and /metrics.

Not public: with `FIX_AND_RELAUNCH_STATUS_TOKEN` set, a request needs `Authorization: Bearer
<token>` or the cookie the login form (`/login`) sets; without it, only requests from this
host (loopback) are answered. Behind a reverse proxy on the same host every request looks
local: set the token there.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import time
from collections.abc import Awaitable, Callable
from html import escape

from aiohttp import web
from aiohttp.typedefs import Middleware

from bot.app import job_views
from bot.app.job_views import JobView, LlmUse
from bot.app.jobs import JobStatus
from bot.app.queue import Queue
from bot.core.settings import Settings

COOKIE = "fix_and_relaunch_status"
RECENT = 20
REFRESH_S = 5
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def cookie_value(token: str) -> str:
    """What the login cookie holds: derived from the token, so the cookie never carries it."""
    return hmac.new(token.encode(), b"status-page-cookie", hashlib.sha256).hexdigest()


def is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def allowed(request: web.Request, settings: Settings) -> bool:
    token = settings.status_token
    if token is None:
        return is_loopback(request.remote)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode()):
        return True
    return hmac.compare_digest(request.cookies.get(COOKIE, "").encode(), cookie_value(token).encode())


def protected(path: str) -> bool:
    return path == "/" or path == "/metrics" or path.startswith("/jobs/")


def guard(settings: Settings) -> Middleware:
    """A middleware: the status page, job JSON and /metrics only for those `allowed`."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not protected(request.path) or allowed(request, settings):
            return await handler(request)
        if settings.status_token is None:
            return web.Response(status=403, text="the status page answers requests from this host only\n")
        if request.path == "/" and "text/html" in request.headers.get("Accept", ""):
            raise web.HTTPSeeOther("/login")
        return web.json_response({"error": "a bearer token is needed"}, status=401)

    return check


async def login_form(request: web.Request) -> web.Response:
    return html_page("Sign in", LOGIN_FORM.format(error=""))


def login_handler(settings: Settings) -> Handler:
    async def login(request: web.Request) -> web.StreamResponse:
        token = settings.status_token
        form = await request.post()
        given = form.get("token")
        if token is None or not isinstance(given, str) or not hmac.compare_digest(given.encode(), token.encode()):
            error = '<p class="error">That is not the status token.</p>'
            return html_page("Sign in", LOGIN_FORM.format(error=error), status=401)
        signed_in = web.HTTPSeeOther("/")
        signed_in.set_cookie(COOKIE, cookie_value(token), httponly=True, samesite="Strict", secure=request.secure)
        raise signed_in

    return login


LOGIN_FORM = """<h1>fix-and-relaunch</h1>{error}
<form method="post" action="/login"><label>Status token
<input type="password" name="token" autocomplete="current-password" autofocus></label>
<button type="submit">Sign in</button></form>"""


def job_handler(queue: Queue) -> Handler:
    async def job_json(request: web.Request) -> web.Response:
        try:
            job_id = int(request.match_info["id"])
        except ValueError:
            return web.json_response({"error": "a job id is a number"}, status=400)
        found = job_views.job(queue.db.connection, job_id)
        if found is None:
            return web.json_response({"error": f"no job {job_id}"}, status=404)
        return web.json_response(found.to_json())

    return job_json


def status_handler(queue: Queue, settings: Settings) -> Handler:
    async def status_page(request: web.Request) -> web.Response:
        conn = queue.db.connection
        active = job_views.jobs(conn, (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.WAITING), limit=100)
        recent = job_views.jobs(conn, (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED), limit=RECENT)
        return html_page("fix-and-relaunch", render_status(queue.depth(), active, recent, settings), refresh=True)

    return status_page


def render_status(depth: dict[str, int], active: list[JobView], recent: list[JobView], settings: Settings) -> str:
    shown = active + recent
    llm = sum((j.llm for j in shown), LlmUse())
    counts = " ".join(f'<span class="count {escape(s)}">{escape(s)}: {n}</span>' for s, n in depth.items())
    running = [j for j in active if j.status == JobStatus.RUNNING]
    queued = [j for j in active if j.status in (JobStatus.QUEUED, JobStatus.WAITING)]
    return "\n".join(
        [
            "<h1>fix-and-relaunch</h1>",
            f'<p id="counts">{counts}</p>',
            f'<p id="totals">Shown jobs: {plural(sum(j.attempts for j in shown), "attempt")}, '
            f"{llm.input_tokens} input and {llm.output_tokens} output LLM tokens, ${llm.cost_usd:.4f}</p>",
            section("running", "Running", running, settings),
            section("queued", "Queued and waiting", queued, settings),
            section("recent", "Recent outcomes", recent, settings),
        ]
    )


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def section(ident: str, title: str, jobs: list[JobView], settings: Settings) -> str:
    rows = "\n".join(job_row(j, settings) for j in jobs) or '<tr><td colspan="6">none</td></tr>'
    return (
        f'<section id="{ident}"><h2>{escape(title)}</h2><table><thead><tr><th>Job</th><th>Status</th>'
        "<th>What</th><th>Steps</th><th>Links</th><th>Updated</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def job_row(job: JobView, settings: Settings) -> str:
    timeline = "".join(f'<li title="{escape(_when(s.recorded_at))}">{escape(s.name)}</li>' for s in job.steps)
    error = f'<div class="error">{escape(job.error)}</div>' if job.error else ""
    outcome = f'<div class="outcome">{escape(job.outcome)}</div>' if job.outcome else ""
    return (
        f'<tr class="job" data-job="{job.id}" data-status="{escape(job.status.value)}">'
        f'<td><a href="/jobs/{job.id}">#{job.id}</a> {escape(job.kind)}</td>'
        f'<td class="status">{escape(job.status.value)}{outcome}{error}</td>'
        f"<td>{escape(describe(job))}</td>"
        f'<td><ol class="timeline">{timeline}</ol></td>'
        f"<td>{links(job, settings)}</td>"
        f"<td>{escape(_when(job.updated_at))}</td></tr>"
    )


def describe(job: JobView) -> str:
    p = job.payload
    if job.kind == "wandb_alert":
        return f"W&B alert {p.get('entity')}/{p.get('project')}"
    where = f"{job.repo or p.get('repo')}" + (f"#{job.branch}" if job.branch else "")
    return f"{where}, PR {p.get('pr')}" if p.get("pr") is not None else where


def links(job: JobView, settings: Settings) -> str:
    p, web_url = job.payload, settings.github_web_url
    found: list[str] = []
    repo = p.get("base_repo") or p.get("repo")
    if repo and p.get("pr") is not None:
        found.append(_a(f"{web_url}/{repo}/pull/{p['pr']}", f"PR #{p['pr']}"))
    for sha in job.commits:
        found.append(_a(f"{web_url}/{job.repo}/commit/{sha}", f"commit {sha[:10]}"))
    found += [f'<span class="run">run {escape(run)}</span>' for run in job.runs]
    if p.get("run_path") and settings.wandb_base_url is None:
        entity, project, run = str(p["run_path"]).split("/", 2)
        found.append(_a(f"https://wandb.ai/{entity}/{project}/runs/{run}", "failed run"))
    return " ".join(found)


def _a(href: str, text: str) -> str:
    return f'<a href="{escape(href)}" rel="noreferrer">{escape(text)}</a>'


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
.timeline{margin:0;padding-left:1.2em;font-size:.9em}.error{color:#a00;font-size:.9em}.count{margin-right:1em}"""


def html_page(title: str, body: str, *, status: int = 200, refresh: bool = False) -> web.Response:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_S}">' if refresh else ""
    text = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{meta}<title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )
    return web.Response(text=text, content_type="text/html", status=status)
