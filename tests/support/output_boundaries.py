"""Every way text leaves the bot, each as a function: a carrier in, the text that left out.

Each boundary runs the real code that builds and redacts that output, with the bot's settings
holding configured secrets; outside services are local fakes (a GitHub client that records what
is posted, the fake Anthropic server). Used by the redaction corpus test and by
`benchmarks/secrets_corpus.py`.
"""

from __future__ import annotations

import asyncio
import copy
import io
import json
import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import anthropic

from bot.app.executor import FixJobExecutor
from bot.app.forge import GitHubForge
from bot.app.jobs import FixJob, Job, JobStatus
from bot.app.messages import BUSY, render
from bot.app.queue import Queue
from bot.cli import output
from bot.cli.main import main as cli
from bot.core.errors import OperationFailed
from bot.core.secrets import Redactor, redacted_logs
from bot.core.settings import Settings
from bot.diagnosis.model import Diagnosis
from bot.fixers.llm.client import Conversation
from bot.fixers.llm.prompt import build_context
from bot.fixers.model import FixContext, FixProposal
from bot.loop.comments import Comments
from bot.loop.model import Action, Attempt, Committed, Diagnosed, Outcome
from bot.repo.branch_doc import FixEntry, add_fix_entry
from bot.repo.config import DEFAULTS
from bot.repo.history import fix_message
from bot.runs.model import RunInfo
from tests.support.fake_anthropic import FakeAnthropic, tool_answer
from tests.support.fake_github import pem, rsa_private_key
from tests.support.net import free_port
from tests.support.paths import REPO_ROOT as ROOT
from tests.support.secrets_corpus import (
    CONFIGURED_WANDB_KEY,
    CONFIGURED_WANDB_WEBHOOK_SECRET,
    CONFIGURED_WEBHOOK_SECRET,
)

Boundary = Callable[[str], str]
RUN = RunInfo(id="r-1a2b3c4d", state="failed", branch="exp-a", steps=3)
SHA = "3f2a9c1e0b7d4a5f6e8c9b0a1d2e3f4a5b6c7d8e"


class RecordingGitHub:
    """Stands in for gidgethub's client: records what is posted; finds no earlier comment."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def post(self, url: str, url_vars: dict[str, str] | None = None, *, data: Any) -> dict[str, Any]:
        self.sent.append(data)
        return {"url": f"{url}/1"}

    async def patch(self, url: str, *, data: Any) -> dict[str, Any]:
        self.sent.append(data)
        return {"url": url}

    async def getiter(self, url: str) -> Any:
        for item in ():
            yield item


def strings(value: Any) -> Iterator[str]:
    """Every string in decoded JSON, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from strings(v)


class Outputs:
    """The boundaries, set up once under `tmp`: a git repo, settings, the fake Anthropic."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.repo = _experiment_repo(tmp / "repo")
        self.anthropic = FakeAnthropic().__enter__()
        self.private_key = pem(rsa_private_key())
        self.settings = Settings(
            wandb_api_key=CONFIGURED_WANDB_KEY,
            wandb_base_url="http://127.0.0.1:9",  # never reached
            anthropic_api_key="sk-ant-test-key-0000000000",
            anthropic_base_url=self.anthropic.url,
            github_app_id="4242",
            github_private_key=self.private_key,
            github_webhook_secret=CONFIGURED_WEBHOOK_SECRET,
            wandb_webhook_secret=CONFIGURED_WANDB_WEBHOOK_SECRET,
            state_dir=tmp / "state",
        )
        self.redactor = Redactor.from_settings(self.settings)
        self.comments = Comments(self.settings.secrets(), 3)
        self.executor = FixJobExecutor(self.settings, Queue.from_settings(self.settings))
        self._server: subprocess.Popen[bytes] | None = None
        self._url = ""
        self._log_size = 0
        self._count = 0

    def close(self) -> None:
        self.anthropic.__exit__(None, None, None)
        if self._server is not None:
            self._server.terminate()
            self._server.wait(timeout=30)

    def boundaries(self, *, server: bool = True) -> dict[str, Boundary]:
        found: dict[str, Boundary] = {
            "comment:fix": self.comment_fix,
            "comment:relaunch": self.comment_relaunch,
            "comment:gave_up": self.comment_gave_up,
            "comment:dry_run": self.comment_dry_run,
            "comment:nothing_to_fix": self.comment_nothing_to_fix,
            "comment:posted_by_server": self.server_comment,
            "check_run:stopped": self.check_run_stopped,
            "check_run:concluded": self.check_run_concluded,
            "app_message": self.app_message,
            "branch_doc": self.branch_doc,
            "commit_message": self.commit_message,
            "llm_prompt": self.llm_prompt,
            "llm_request": self.llm_request,
            "log": self.log,
            "json_output": self.json_output,
            "terminal_text": self.terminal_text,
            "progress": self.progress,
            "stderr": self.stderr,
        }
        if server:
            found["serve_log"] = self.serve_log
        return found

    # -- PR comments and check runs ---------------------------------------------------------

    def _found(self, carrier: str) -> Diagnosed:
        diagnosis = Diagnosis(
            category="code_error",
            retryable=False,
            exception={"type": "ValueError", "message": carrier},
            summary=carrier,
            evidence=carrier.splitlines(),
        )
        return Diagnosed(RUN, diagnosis, carrier.splitlines(), [])

    def comment_fix(self, carrier: str) -> str:
        proposal = FixProposal(fixer="llm:claude", description=carrier, root_cause=carrier, tokens={"input": 1})
        committed = Committed(SHA, ["src/config.py"], proposal, "".join(f"+{line}\n" for line in carrier.splitlines()))
        attempt = Attempt(number=1, category="code_error", failed_run=RUN.id, commit=SHA)
        return self.comments.fix(self._found(carrier), committed, attempt, "Re-launching job.", None)

    def comment_relaunch(self, carrier: str) -> str:
        return self.comments.relaunch(self._found(carrier), 1, "Re-launching job.", None, carrier)

    def comment_gave_up(self, carrier: str) -> str:
        attempt = Attempt(number=1, category="code_error", failed_run=RUN.id, fixer="rule:x", problem=carrier)
        outcome = Outcome(
            action=Action.GAVE_UP,
            diagnosis={"category": "code_error", "summary": carrier, "evidence": carrier.splitlines()},
            attempts=[attempt],
        )
        return self.comments.gave_up(carrier, outcome)

    def comment_dry_run(self, carrier: str) -> str:
        proposal = FixProposal(fixer="rule:x", description=carrier, root_cause=carrier)
        return self.comments.dry_run(proposal, self._found(carrier), carrier)

    def comment_nothing_to_fix(self, carrier: str) -> str:
        return self.comments.nothing_to_fix(carrier, RunInfo(id=carrier, state="finished"))

    def _job(self) -> Job:
        fix = FixJob(
            repo="acme/exp",
            branch="exp-a",
            clone_url="https://github.com/acme/exp.git",
            installation_id=1,
            comments_url="https://api.github.com/repos/acme/exp/issues/1/comments",
            head_sha=SHA,
        )
        return Job(id=7, status=JobStatus.RUNNING, payload=fix)

    def _posted(self, act: Callable[[GitHubForge], Any]) -> str:
        gh = RecordingGitHub()
        asyncio.run(act(GitHubForge(gh)))
        return "\n".join(s for data in gh.sent for s in strings(data))

    def server_comment(self, carrier: str) -> str:
        job = self._job()
        return self._posted(lambda forge: self.executor._comment(forge, job, "<!-- m -->", carrier))

    def check_run_stopped(self, carrier: str) -> str:
        job = self._job()
        return self._posted(lambda forge: self.executor._stopped(forge, job, "<!-- m -->", OperationFailed(carrier)))

    def check_run_concluded(self, carrier: str) -> str:
        job = self._job()
        outcome = Outcome(action=Action.PATCHED, comment=carrier, commits=[SHA])
        return self._posted(lambda forge: self.executor._conclude(forge, job, outcome, "<!-- m -->"))

    def app_message(self, carrier: str) -> str:
        return render(BUSY, self.redactor, user="octocat", branch=carrier, status="running", job_id=7)

    # -- the branch: doc entry and commit message ---------------------------------------------

    def branch_doc(self, carrier: str) -> str:
        self._count += 1
        worktree = self.tmp / "docs" / str(self._count)
        entry = FixEntry(1, "code_error", carrier, carrier, carrier, files=[carrier], run_id=RUN.id)
        return (worktree / add_fix_entry(worktree, "exp-a", entry, self.redactor)).read_text()

    def commit_message(self, carrier: str) -> str:
        return fix_message(carrier, RUN.id, self.redactor)

    # -- the LLM ---------------------------------------------------------------------------------

    def _fix_context(self, carrier: str) -> FixContext:
        return FixContext(
            worktree=self.repo,
            branch="exp-a",
            diagnosis=self._found(carrier).diagnosis,
            config=copy.deepcopy(DEFAULTS),
            log_tail=carrier.splitlines(),
            run_config={"note": carrier},
            base_branch="main",
            hint=carrier,
            pr_text=carrier,
            previous_attempts=[{"problem": carrier}],
        )

    def llm_prompt(self, carrier: str) -> str:
        return build_context(self._fix_context(carrier), self.settings).render()

    def llm_request(self, carrier: str) -> str:
        """Two rounds: the context, then the model's answer replayed with an error about it."""
        answer = {
            "root_cause": carrier,
            "explanation": carrier,
            "description": carrier,
            "edits": [{"path": "src/config.py", "search": "lr", "replace": carrier}],
        }
        self.anthropic.requests.clear()
        self.anthropic.script(tool_answer(answer, text=carrier), tool_answer(answer))
        client = anthropic.Anthropic(api_key="sk-ant-test-key-0000000000", base_url=self.anthropic.url, max_retries=0)
        conversation = Conversation(self._fix_context(carrier), self.settings, client)
        conversation.ask()
        conversation.report_failure(carrier)
        conversation.ask()
        return "\n".join(s for r in self.anthropic.requests for s in strings(r.body))

    # -- the process's own output: logs, JSON, stderr -------------------------------------------

    def log(self, carrier: str) -> str:
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger = logging.getLogger("bot.app.corpus")
        logger.addHandler(handler)
        logger.propagate = False
        try:
            with redacted_logs(self.redactor):
                logger.warning("job %s: %s", 7, carrier)
                try:
                    raise OperationFailed(carrier)
                except OperationFailed:
                    logger.exception("job %d failed", 7)
        finally:
            logger.removeHandler(handler)
        return stream.getvalue()

    def json_output(self, carrier: str) -> str:
        data = {"comment": carrier, "reason": carrier, "attempts": [{"problem": carrier}], "config": {"note": carrier}}
        out = io.StringIO()
        with redirect_stdout(out):
            output.print_json(data, self.settings)
        return "\n".join(strings(json.loads(out.getvalue())))

    def terminal_text(self, carrier: str) -> str:
        out = io.StringIO()
        with redirect_stdout(out):
            output.print_text(output.table([{"_step": 3, "note": carrier}]), self.settings)
        return out.getvalue()

    def progress(self, carrier: str) -> str:
        err = io.StringIO()
        with redirect_stderr(err):
            output.progress_printer(self.settings)(f"committed {SHA[:8]}: Fix: {carrier}")
        return err.getvalue()

    def stderr(self, carrier: str) -> str:
        """`diagnose` refuses the branch name, quoting it (as a repr) in its one line on stderr."""
        err = io.StringIO()
        with _environment(self._env()), redirect_stderr(err), redirect_stdout(io.StringIO()):
            code = cli(["diagnose", "--repo", str(self.repo), f"--branch=bad ref: {carrier}"])
        assert code == 2, err.getvalue()
        return err.getvalue()

    def _env(self) -> dict[str, str]:
        s = self.settings
        return {
            "WANDB_API_KEY": s.wandb_api_key or "",
            "WANDB_BASE_URL": s.wandb_base_url or "",
            "ANTHROPIC_API_KEY": s.anthropic_api_key or "",
            "ANTHROPIC_BASE_URL": s.anthropic_base_url or "",
            "GITHUB_APP_ID": s.github_app_id or "",
            "GITHUB_PRIVATE_KEY": s.github_private_key or "",
            "GITHUB_WEBHOOK_SECRET": s.github_webhook_secret or "",
            "WANDB_WEBHOOK_SECRET": s.wandb_webhook_secret or "",
            "FIX_AND_RELAUNCH_STATE_DIR": str(self.tmp / "cli-state"),
        }

    # -- `serve`'s log, from a real server process ------------------------------------------------

    def serve_log(self, carrier: str) -> str:
        """A webhook with a bad signature is rejected; the access log line quotes its User-Agent: the carrier.
        (The delivery id cannot carry it: an id that is not a plain token is refused unread.)"""
        log_path = self._serve()
        self._count += 1
        request = urllib.request.Request(
            f"{self._url}/webhooks/github",
            data=b"{}",
            method="POST",
            headers={
                "X-GitHub-Event": "ping",
                "X-GitHub-Delivery": f"delivery-{self._count}",
                "User-Agent": " ".join(carrier.split()),
                "X-Hub-Signature-256": "sha256=" + "0" * 64,
                "Content-Type": "application/json",
            },
        )
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except urllib.error.HTTPError as exc:
            assert exc.code == 401, exc.code
        # The access log line of the request comes after the rejection's own line.
        deadline = time.monotonic() + 10
        while '"POST /webhooks/github' not in (new := log_path.read_text()[self._log_size :]):
            assert time.monotonic() < deadline, f"serve logged no request: {new!r}"
            time.sleep(0.02)
        self._log_size += len(new)
        return new

    def _serve(self) -> Path:
        log_path = self.tmp / "serve.log"
        if self._server is not None:
            return log_path
        port = free_port()
        self._url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            **self._env(),
            "PYTHONPATH": str(ROOT),
            "FIX_AND_RELAUNCH_STATE_DIR": str(self.tmp / "serve"),
        }
        with open(log_path, "wb") as log_file:
            self._server = subprocess.Popen(
                [sys.executable, "-m", "bot", "serve", "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self._url}/healthz", timeout=2).close()
                break
            except OSError:
                assert self._server.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
        self._log_size = len(log_path.read_text())
        return log_path


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _experiment_repo(root: Path) -> Path:
    """A small repo: `main`, and `exp-a` that changed the config."""
    (root / "src").mkdir(parents=True)
    (root / "src/config.py").write_text('DEFAULTS = {"lr": 0.1}\n')
    (root / "requirements.txt").write_text("torch\n")

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "baseline")
    git("checkout", "-q", "-b", "exp-a")
    (root / "src/config.py").write_text('DEFAULTS = {"lr": 25.0}\n')
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-am", "Experiment: lr 25")
    return root
