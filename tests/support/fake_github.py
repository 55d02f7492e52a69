"""A local GitHub that speaks the REST wire format, for tests and benchmarks.

It records every call (method, path, query, body, authorization) and answers like GitHub
for what the bot uses: App installation tokens (checking the App's JWT against its public
key), the installation of a repo, reactions, issue comments (create, list, edit),
collaborator permission, check runs (create), pulls (get, list by head), the
pulls of a commit and a repo (clone_url, default_branch); and the App manifest flow: the
`/settings/apps/new` form (a confirmation page, then the redirect with a code) and
`POST /app-manifests/{code}/conversions`, after which the fake knows the new App; a pull
request's files and a file's contents (for the config check). Repo endpoints require an
installation token it issued and that has not expired. Reach it through real gidgethub with
`base_url=fake.url`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
from aiohttp import web

from bot.core.settings import Settings
from tests.support.paths import FIXTURES


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    authorization: str | None


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeGitHub:
    app_id: str
    public_key: Any  # the App's RSA public key; JWTs are verified with it
    url: str = ""
    token_ttl: float = 3600.0
    installations: dict[str, int] = field(default_factory=dict)  # "owner/repo" -> installation id
    permissions: dict[str, str] = field(default_factory=dict)  # login -> admin/write/read/…
    pulls: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    commit_pulls: dict[str, list[int]] = field(default_factory=dict)  # sha -> PR numbers
    default_branches: dict[str, str] = field(default_factory=dict)  # "owner/repo" -> its default branch (main)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    tokens: dict[str, tuple[int, float]] = field(default_factory=dict)  # token -> (installation, expiry)
    record: bool = True  # the benchmark turns recording off
    stall: str | None = None  # a request whose body holds this text never gets an answer…
    hold: asyncio.Event | None = None  # …or not until this is set
    delay: float = 0.0  # seconds before each answer: a slow GitHub
    faults: list[int] = field(default_factory=list)  # the next requests get these statuses (500, 502, 429, 403…)
    reactions: dict[tuple[str, str], int] = field(default_factory=dict)  # (comment path, content) -> reaction id
    manifest_codes: dict[str, dict[str, Any]] = field(default_factory=dict)  # code -> {"manifest", "owner"}
    registered_apps: list[dict[str, Any]] = field(default_factory=list)  # conversions made, with their key
    pull_files: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)  # (repo, PR) -> files
    contents: dict[tuple[str, str, str], str] = field(
        default_factory=dict
    )  # (repo, ref, path) -> text; ref "" = default

    def __post_init__(self):
        self._ids = itertools.count(1000)

    # -- what tests ask -----------------------------------------------------------

    def find(self, method: str, suffix: str = "") -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path.endswith(suffix)]

    def token_requests(self) -> list[Call]:
        return [c for c in self.calls if c.path.endswith("/access_tokens")]

    def add_pull(
        self,
        repo: str,
        number: int,
        *,
        head_ref: str,
        head_sha: str,
        head_repo: str | None = None,
        maintainer_can_modify: bool = False,
        push: bool | None = None,
        state: str = "open",
        base_ref: str = "main",
    ) -> dict[str, Any]:
        head_repo = head_repo or repo
        head_repo_obj = self._repo(head_repo)
        if push is not None:
            head_repo_obj["permissions"] = {"admin": False, "push": push, "pull": True}
        pr = {
            "url": f"{self.url}/repos/{repo}/pulls/{number}",
            "html_url": f"https://github.com/{repo}/pull/{number}",
            "comments_url": f"{self.url}/repos/{repo}/issues/{number}/comments",
            "number": number,
            "state": state,
            "maintainer_can_modify": maintainer_can_modify,
            "head": {
                "label": f"{head_repo.split('/')[0]}:{head_ref}",
                "ref": head_ref,
                "sha": head_sha,
                "repo": head_repo_obj,
            },
            "base": {
                "label": f"{repo.split('/')[0]}:{base_ref}",
                "ref": base_ref,
                "sha": "0" * 40,
                "repo": self._repo(repo),
            },
        }
        self.pulls[(repo, number)] = pr
        return pr

    def _repo(self, full_name: str) -> dict[str, Any]:
        return {
            "full_name": full_name,
            "name": full_name.split("/")[1],
            "url": f"{self.url}/repos/{full_name}",
            "clone_url": f"https://github.com/{full_name}.git",
        }

    # -- the server ------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        r = app.router
        r.add_post("/app/installations/{id}/access_tokens", self.access_token)
        r.add_get("/repos/{owner}/{repo}/installation", self.repo_installation)
        r.add_get("/repos/{owner}/{repo}", self.get_repo)
        r.add_post("/repos/{owner}/{repo}/issues/comments/{id}/reactions", self.reaction)
        r.add_get("/repos/{owner}/{repo}/issues/{number}/comments", self.list_comments)
        r.add_post("/repos/{owner}/{repo}/issues/{number}/comments", self.create_comment)
        r.add_patch("/repos/{owner}/{repo}/issues/comments/{id}", self.edit_comment)
        r.add_get("/repos/{owner}/{repo}/collaborators/{user}/permission", self.permission)
        r.add_post("/repos/{owner}/{repo}/check-runs", self.create_check_run)
        r.add_get("/repos/{owner}/{repo}/pulls/{number}", self.get_pull)
        r.add_get("/repos/{owner}/{repo}/pulls", self.list_pulls)
        r.add_get("/repos/{owner}/{repo}/commits/{sha}/pulls", self.commit_pulls_handler)
        r.add_get("/repos/{owner}/{repo}/pulls/{number}/files", self.list_pull_files)
        r.add_get("/repos/{owner}/{repo}/contents/{path:.+}", self.get_contents)
        r.add_post("/settings/apps/new", self.new_app_form)
        r.add_post("/organizations/{org}/settings/apps/new", self.new_app_form)
        r.add_post("/settings/apps/new/confirm", self.confirm_new_app)
        r.add_post("/app-manifests/{code}/conversions", self.manifest_conversion)
        app.middlewares.append(self._record)
        app.middlewares.append(self._misbehave)
        return app

    @web.middleware
    async def _misbehave(self, request: web.Request, handler):
        """A slow GitHub (`delay`), and injected failures (`faults`): a 5xx, or a rate limit
        asking to retry in a second."""
        if self.delay:
            await asyncio.sleep(self.delay)
        if not self.faults:
            return await handler(request)
        status = self.faults.pop(0)
        if status in (403, 429):
            return web.json_response(
                {"message": "API rate limit exceeded"},
                status=status,
                headers={"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "0", "Retry-After": "1"},
            )
        return self._error(status, "Server Error")

    @web.middleware
    async def _record(self, request: web.Request, handler):
        if not self.record:
            return await handler(request)
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:  # a form (the App manifest flow)
            body = raw.decode("utf-8", "replace")
        self.calls.append(
            Call(request.method, request.path, dict(request.query), body, request.headers.get("Authorization"))
        )
        if self.stall and self.stall in raw.decode("utf-8", "replace"):
            # The bot is stopped while it waits (a restart test), or the test lets it go on.
            await (self.hold.wait() if self.hold is not None else asyncio.sleep(3600))
        return await handler(request)

    @staticmethod
    def _error(status: int, message: str) -> web.Response:
        return web.json_response(
            {"message": message, "documentation_url": "https://docs.github.com/rest"}, status=status
        )

    def _app_auth(self, request: web.Request) -> web.Response | None:
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return self._error(401, "A JSON web token could not be decoded")
        try:
            claims = jwt.decode(credentials, self.public_key, algorithms=["RS256"])
        except jwt.PyJWTError as exc:
            return self._error(401, f"A JSON web token could not be decoded: {exc}")
        if str(claims.get("iss")) != str(self.app_id):
            return self._error(401, "Integration not found")
        return None

    def _installation_auth(self, request: web.Request) -> web.Response | None:
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        token = credentials if scheme.lower() in ("token", "bearer") else None
        if token not in self.tokens or self.tokens[token][1] <= time.time():
            return self._error(401, "Bad credentials")
        return None

    async def access_token(self, request: web.Request) -> web.Response:
        if (denied := self._app_auth(request)) is not None:
            return denied
        installation_id = int(request.match_info["id"])
        token = f"ghs_fake{next(self._ids)}"
        expires = time.time() + self.token_ttl
        self.tokens[token] = (installation_id, expires)
        return web.json_response(
            {
                "token": token,
                "expires_at": iso(expires),
                "permissions": {"contents": "write"},
                "repository_selection": "all",
            },
            status=201,
        )

    async def repo_installation(self, request: web.Request) -> web.Response:
        if (denied := self._app_auth(request)) is not None:
            return denied
        repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
        if repo not in self.installations:
            return self._error(404, "Not Found")
        return web.json_response({"id": self.installations[repo], "app_id": int(self.app_id)})

    async def get_repo(self, request: web.Request) -> web.Response:
        """A repo the fake knows: one the App is installed on, or the base or head of a pull."""
        if (denied := self._installation_auth(request)) is not None:
            return denied
        repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
        known = set(self.installations) | {
            p[side]["repo"]["full_name"]
            for p in self.pulls.values()
            for side in ("base", "head")
            if p[side].get("repo")
        }
        if repo not in known:
            return self._error(404, "Not Found")
        return web.json_response({**self._repo(repo), "default_branch": self.default_branches.get(repo, "main")})

    async def reaction(self, request: web.Request) -> web.Response:
        """Like GitHub: the same reaction again is answered 200 with the one that exists."""
        if (denied := self._installation_auth(request)) is not None:
            return denied
        body = await request.json()
        key = (request.path, body["content"])
        if key in self.reactions:
            return web.json_response({"id": self.reactions[key], "content": body["content"]}, status=200)
        self.reactions[key] = next(self._ids)
        return web.json_response({"id": self.reactions[key], "content": body["content"]}, status=201)

    async def list_comments(self, request: web.Request) -> web.Response:
        if (denied := self._installation_auth(request)) is not None:
            return denied
        issue_url = self._issue_url(request)
        return web.json_response([c for c in self.comments.values() if c["issue_url"] == issue_url])

    async def create_comment(self, request: web.Request) -> web.Response:
        if (denied := self._installation_auth(request)) is not None:
            return denied
        body = await request.json()
        comment_id = next(self._ids)
        repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
        comment = {
            "id": comment_id,
            "url": f"{self.url}/repos/{repo}/issues/comments/{comment_id}",
            "issue_url": self._issue_url(request),
            "body": body["body"],
            "user": {"login": "fix-and-relaunch[bot]", "type": "Bot"},
        }
        self.comments[comment_id] = comment
        return web.json_response(comment, status=201)

    async def edit_comment(self, request: web.Request) -> web.Response:
        if (denied := self._installation_auth(request)) is not None:
            return denied
        comment = self.comments.get(int(request.match_info["id"]))
        if comment is None:
            return self._error(404, "Not Found")
        comment["body"] = (await request.json())["body"]
        return web.json_response(comment)

    def _issue_url(self, request: web.Request) -> str:
        m = request.match_info
        return f"{self.url}/repos/{m['owner']}/{m['repo']}/issues/{m['number']}"

    async def permission(self, request: web.Request) -> web.Response:
        if (denied := self._installation_auth(request)) is not None:
            return denied
        user = request.match_info["user"]
        if user not in self.permissions:
            return self._error(404, f"{user} is not a user")
        return web.json_response({"permission": self.permissions[user], "user": {"login": user}})

    async def create_check_run(self, request: web.Request) -> web.Response:
        if (denied := self._installation_auth(request)) is not None:
            return denied
        body = await request.json()
        if not body.get("name") or not body.get("head_sha"):
            return self._error(422, "Invalid request: name and head_sha are required")
        run_id = next(self._ids)
        repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
        run = {"id": run_id, "url": f"{self.url}/repos/{repo}/check-runs/{run_id}", **body}
        self.check_runs[run_id] = run
        return web.json_response(run, status=201)

    async def get_pull(self, request: web.Request) -> web.Response:
        if (denied := self._installation_auth(request)) is not None:
            return denied
        repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
        pr = self.pulls.get((repo, int(request.match_info["number"])))
        return web.json_response(pr) if pr else self._error(404, "Not Found")

    async def list_pulls(self, request: web.Request) -> web.Response:
        if (denied := self._installation_auth(request)) is not None:
            return denied
        repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
        state, head = request.query.get("state", "open"), request.query.get("head")
        found = [
            p
            for (r, _), p in self.pulls.items()
            if r == repo and (state == "all" or p["state"] == state) and (head is None or p["head"]["label"] == head)
        ]
        return web.json_response(found)

    async def commit_pulls_handler(self, request: web.Request) -> web.Response:
        if (denied := self._installation_auth(request)) is not None:
            return denied
        repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
        numbers = self.commit_pulls.get(request.match_info["sha"], [])
        return web.json_response([self.pulls[(repo, n)] for n in numbers if (repo, n) in self.pulls])

    async def list_pull_files(self, request: web.Request) -> web.Response:
        if (denied := self._installation_auth(request)) is not None:
            return denied
        repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
        return web.json_response(self.pull_files.get((repo, int(request.match_info["number"])), []))

    async def get_contents(self, request: web.Request) -> web.Response:
        """A file as the contents API gives it: base64 content; 404 when the repo, ref or path is unknown."""
        if (denied := self._installation_auth(request)) is not None:
            return denied
        repo, path = f"{request.match_info['owner']}/{request.match_info['repo']}", request.match_info["path"]
        text = self.contents.get((repo, request.query.get("ref", ""), path))
        if text is None:
            return self._error(404, "Not Found")
        encoded = base64.b64encode(text.encode()).decode()
        return web.json_response(
            {"type": "file", "encoding": "base64", "path": path, "name": path.rsplit("/", 1)[-1], "content": encoded}
        )

    # -- the App manifest flow -------------------------------------------------------

    async def new_app_form(self, request: web.Request) -> web.Response:
        """What GitHub does with the manifest form: check it, ask the signed-in user to confirm."""
        form = await request.post()
        try:
            manifest = json.loads(str(form.get("manifest", "")))
        except ValueError:
            return web.Response(status=422, text="Invalid manifest: not JSON")
        problems = [key for key in ("url", "hook_attributes", "redirect_url") if not manifest.get(key)]
        if problems or not manifest["hook_attributes"].get("url"):
            return web.Response(status=422, text=f"Invalid manifest: missing {', '.join(problems) or 'hook url'}")
        owner = request.match_info.get("org", "octocat")
        page = (
            f"<!doctype html><html><body><h1>Create GitHub App for {escape(owner)}</h1>"
            f'<p id="app-name">{escape(manifest.get("name", ""))}</p>'
            '<form method="post" action="/settings/apps/new/confirm">'
            f'<input type="hidden" name="manifest" value="{escape(json.dumps(manifest))}">'
            f'<input type="hidden" name="state" value="{escape(request.query.get("state", ""))}">'
            f'<input type="hidden" name="owner" value="{escape(owner)}">'
            '<button type="submit" id="create">Create GitHub App</button></form></body></html>'
        )
        return web.Response(text=page, content_type="text/html")

    async def confirm_new_app(self, request: web.Request) -> web.Response:
        form = await request.post()
        manifest = json.loads(str(form["manifest"]))
        code = f"v1.{next(self._ids)}{hashlib.sha1(str(time.time()).encode()).hexdigest()[:12]}"
        self.manifest_codes[code] = {"manifest": manifest, "owner": str(form["owner"]), "at": time.time()}
        target = f"{manifest['redirect_url']}?{urlencode({'code': code, 'state': str(form['state'])})}"
        raise web.HTTPFound(target)

    async def manifest_conversion(self, request: web.Request) -> web.Response:
        """GitHub's answer: the new App with its key and secrets; the code is single-use, for an hour.
        From now on the fake takes this App's JWTs."""
        found = self.manifest_codes.pop(request.match_info["code"], None)
        if found is None or time.time() - found["at"] > 3600:
            return self._error(404, "Not Found")
        manifest, owner = found["manifest"], found["owner"]
        key = rsa_private_key()
        app_id = next(self._ids)
        slug = str(manifest.get("name", "app")).lower().replace(" ", "-")
        answer = {
            "id": app_id,
            "slug": slug,
            "node_id": f"MDM6QXBw{app_id}",
            "owner": {"login": owner, "id": 1, "type": "User"},
            "name": manifest.get("name"),
            "description": manifest.get("description"),
            "external_url": manifest.get("url"),
            "html_url": f"{self.url}/apps/{slug}",
            "created_at": iso(time.time()),
            "updated_at": iso(time.time()),
            "permissions": manifest.get("default_permissions", {}),
            "events": manifest.get("default_events", []),
            "client_id": f"Iv1.{app_id}",
            "client_secret": hashlib.sha1(f"client{app_id}".encode()).hexdigest(),
            "webhook_secret": hashlib.sha1(f"hook{app_id}{time.time()}".encode()).hexdigest(),
            "pem": pem(key),
        }
        self.app_id, self.public_key = str(app_id), key.public_key()
        self.registered_apps.append({**answer, "manifest": manifest})
        return web.json_response(answer, status=201)


# -- helpers and fixtures shared by the server, handler and benchmark code -------------------

APP_ID = "4242"
WEBHOOK_SECRET = "webhook-secret-for-tests"
WANDB_SECRET = "wandb-secret-for-tests"
INSTALLATION_ID = 1  # what GitHub's example payload `issue_comment/created.with-installation` carries
EXAMPLES = FIXTURES / "github-webhooks"  # GitHub's published examples (see SOURCE.md there)


def rsa_private_key():
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(private_key) -> str:
    from cryptography.hazmat.primitives import serialization

    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def example(relative: str, api_url: str) -> dict[str, Any]:
    """One of GitHub's payload examples kept in tests/fixtures, its API URLs pointed at `api_url`.

    (GitHub Enterprise payloads carry their own API URL the same way.)
    """
    path = EXAMPLES / relative
    return json.loads(path.read_text().replace("https://api.github.com", api_url))


def pr_comment(
    api_url: str, body: str, *, association: str = "OWNER", login: str = "Codertocat", user_type: str = "User"
) -> dict[str, Any]:
    """GitHub's issue_comment example, turned into a comment on pull request #1."""
    data = example("issue_comment/created.with-installation.payload.json", api_url)
    issue = data["issue"]
    repo = data["repository"]["full_name"]
    issue["pull_request"] = {
        "url": f"{api_url}/repos/{repo}/pulls/{issue['number']}",
        "html_url": f"https://github.com/{repo}/pull/{issue['number']}",
        "diff_url": f"https://github.com/{repo}/pull/{issue['number']}.diff",
        "patch_url": f"https://github.com/{repo}/pull/{issue['number']}.patch",
        "merged_at": None,
    }
    comment = data["comment"]
    comment.update(body=body, author_association=association)
    comment["user"].update(login=login, type=user_type)
    return data


def signed(body: bytes, event: str, delivery: str, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "Content-Type": "application/json",
        "X-Hub-Signature-256": f"sha256={digest}",
    }


def settings_with_remote(fake: FakeGitHub, private_key, root: Path, origin: Path, repo: str) -> Settings:
    """`make_settings` (state in `root/state`) for a server that clones `repo` from `origin`: its git
    URL template points into `root/git`, where `<repo>.git` links to `origin`."""
    link = root / "git" / f"{repo}.git"
    link.parent.mkdir(parents=True)
    link.symlink_to(origin)
    return replace(make_settings(fake, private_key, root / "state"), github_git_url=f"file://{root}/git/{{repo}}.git")


def make_settings(fake: FakeGitHub, private_key, state_dir: Path) -> Settings:
    return Settings(
        github_app_id=APP_ID,
        github_private_key=pem(private_key),
        github_webhook_secret=WEBHOOK_SECRET,
        wandb_webhook_secret=WANDB_SECRET,
        github_api_url=fake.url,
        state_dir=state_dir,
    )
