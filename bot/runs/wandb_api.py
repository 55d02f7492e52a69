"""RunStore over W&B's public API (`wandb.Api`), the online source of runs.

Reads are bounded: listings stop at `max_runs`, history asks only for the last steps,
and the log tail asks the server for the last lines rather than downloading output.log.
Every failure leaves as `BadInput` or `OperationFailed` with one line that never holds
the API key.
"""

from __future__ import annotations

import contextlib
import itertools
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from bot.core.errors import BadInput, BotError, OperationFailed, exception_line
from bot.runs.model import RunInfo

if TYPE_CHECKING:
    import wandb

# W&B states the rest of the bot does not name, mapped onto ones it does.
_STATES = {"pending": "queued", "preempting": "running", "preempted": "crashed"}
_INTERNAL_KEYS = ("_wandb", "wandb_version")
_FALLBACK_TAIL_BYTES = 256 * 1024
# A run's first rows are read from its steps below this, in one request: a run whose first
# logged step is later (sparse `step=` values) is judged from its last rows alone.
HEAD_STEPS = 200


class WandbApiRunStore:
    """Runs of one W&B project, read through the real `wandb` client."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        entity: str,
        project: str,
        branch_key: str = "branch",
        commits_on_branch: Callable[[str, str], bool] | None = None,
        timeout: int = 30,
        max_runs: int = 50,
    ) -> None:
        self._api_key = api_key
        self._base_url = base_url
        self.entity = entity
        self.project = project
        self.branch_key = branch_key
        self._commits_on_branch = commits_on_branch
        self._timeout = timeout
        self._max_runs = max_runs
        self._client: wandb.Api | None = None
        self._wandb_runs: dict[str, Any] = {}  # run id -> wandb Run, from the last read

    # ---- RunStore --------------------------------------------------------------------------
    def runs(self, branch: str | None = None) -> list[RunInfo]:
        if branch is None:
            return self._list()
        found = self._list({f"config.{self.branch_key}": branch})
        if found or self._commits_on_branch is None:
            return found
        # Runs started without the branch in their config: match their git commit instead.
        return [run for run in self._list() if run.commit and self._commits_on_branch(run.commit, branch)]

    def get(self, run_id: str) -> RunInfo:
        # A filtered listing rather than api.run(): it answers "none" instead of raising.
        found = self._list({"name": run_id}, limit=1)
        if not found:
            raise BadInput(f"W&B run {self._path()}/{run_id} not found")
        return found[0]

    def get_many(self, run_ids: list[str]) -> dict[str, RunInfo]:
        """The runs of `run_ids` this project has, by id, from one filtered listing: a poll of
        many waiting runs is one query per project, not one per run."""
        if not run_ids:
            return {}
        found = self._list({"name": {"$in": list(run_ids)}}, limit=len(run_ids))
        return {run.id: run for run in found}

    def history(self, run: RunInfo, rows: int = 10) -> list[dict]:
        if rows <= 0:
            return []
        with self._calling(f"reading the history of run {run.id}"):
            wandb_run = self._wandb_run(run)
            # The live last step (a running run moves on); the summary's when the server has none.
            last_step = max(wandb_run.lastHistoryStep, _last_step(run))
            if last_step < 0:
                return []
            scan = wandb_run.scan_history(min_step=max(0, last_step - rows + 1), page_size=rows)
            return list(scan)[-rows:]

    def first_history(self, run: RunInfo, rows: int = 3) -> list[dict]:
        if rows <= 0:
            return []
        with self._calling(f"reading the first history rows of run {run.id}"):
            scan = self._wandb_run(run).scan_history(min_step=0, max_step=HEAD_STEPS, page_size=HEAD_STEPS)
            return list(itertools.islice(scan, rows))

    def log_tail(self, run: RunInfo, lines: int = 200) -> list[str]:
        if lines <= 0:
            return []
        # wandb 0.31 has Run.console_logs(last=N): one GraphQL request (RunConsoleLogTail)
        # for the last N lines. Servers without that field get a byte-range read of output.log.
        with self._calling(f"reading the log of run {run.id}"):
            wandb_run = self._wandb_run(run)
            try:
                return [line.content for line in wandb_run.console_logs(last=lines)]
            except Exception as exc:
                if _is_timeout(exc):
                    raise
                return _output_log_tail(wandb_run, lines, self._timeout)

    def delete(self, run: RunInfo) -> None:
        with self._calling(f"deleting run {run.id}"):
            self._wandb_run(run).delete()
        self._wandb_runs.pop(run.id, None)

    # ---- helpers ---------------------------------------------------------------------------
    def _path(self) -> str:
        return f"{self.entity}/{self.project}"

    def _api(self) -> wandb.Api:
        """The client, made on first use: wandb is slow to import and checks the key online."""
        if self._client is not None:
            return self._client
        if not self._api_key:
            raise BadInput("no W&B API key: set WANDB_API_KEY")
        import wandb

        overrides = {"entity": self.entity, "project": self.project}
        if self._base_url:
            overrides["base_url"] = self._base_url
        with self._calling("connecting to W&B"):
            self._client = wandb.Api(api_key=self._api_key, overrides=overrides, timeout=self._timeout)
        return self._client

    def _list(self, filters: dict | None = None, limit: int | None = None) -> list[RunInfo]:
        api = self._api()
        limit = limit or self._max_runs
        with self._calling(f"listing runs of {self._path()}"):
            api.flush()  # the client caches listings; a poll must see new states
            # lazy=False: config and summary come in the listing, not one request per run.
            found = api.runs(
                self._path(), filters=filters or {}, order="-created_at", per_page=min(limit, 50), lazy=False
            )
            wandb_runs = list(itertools.islice(found, limit))
        self._wandb_runs.update((r.id, r) for r in wandb_runs)
        return [_run_info(r, self.branch_key) for r in wandb_runs]

    def _wandb_run(self, run: RunInfo) -> Any:
        if run.id not in self._wandb_runs:
            self.get(run.id)
        return self._wandb_runs[run.id]

    @contextlib.contextmanager
    def _calling(self, what: str) -> Iterator[None]:
        try:
            yield
        except BotError:
            raise
        except Exception as exc:
            raise _translate(exc, what, self._base_url or "W&B", self._api_key) from None


def _run_info(run: Any, branch_key: str) -> RunInfo:
    config = {k: v for k, v in dict(run.config).items() if k not in _INTERNAL_KEYS}
    summary = {k: v for k, v in dict(run.summary_metrics).items() if k not in _INTERNAL_KEYS}
    line_count = getattr(run, "history_line_count", None) or 0
    step = summary.get("_step")
    steps = max(line_count, step + 1 if isinstance(step, int) else 0)
    branch = config.get(branch_key)
    return RunInfo(
        id=run.id,
        name=run.name,
        state=_STATES.get(run.state, run.state),
        config=config,
        summary=summary,
        commit=getattr(run, "commit", None) or None,
        branch=str(branch) if branch is not None else None,
        created_at=wandb_time(getattr(run, "created_at", None)),
        updated_at=wandb_time(getattr(run, "heartbeat_at", None)),
        steps=steps,
        url=run.url,
        source="wandb",
    )


def wandb_time(stamp: str | None) -> float | None:
    """A W&B timestamp (createdAt, heartbeatAt) as epoch seconds; None when absent or unreadable."""
    if not stamp:
        return None
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    # W&B sends UTC without a zone designator.
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()


def _last_step(run: RunInfo) -> int:
    step = run.summary.get("_step")
    if isinstance(step, int):
        return step
    return run.steps - 1


def _output_log_tail(wandb_run: Any, lines: int, timeout: int) -> list[str]:
    """The last lines of output.log, from one HTTP Range request for its last bytes."""
    files = list(wandb_run.files(names=["output.log"]))
    if not files:
        return []
    request = urllib.request.Request(files[0].direct_url, headers={"Range": f"bytes=-{_FALLBACK_TAIL_BYTES}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        data = _last_bytes(response, _FALLBACK_TAIL_BYTES)
        cut = response.status != 206 or "bytes 0-" not in (response.headers.get("Content-Range") or "")
    text = data.decode("utf-8", errors="replace").splitlines()
    if cut and len(data) >= _FALLBACK_TAIL_BYTES and text:
        text = text[1:]  # the first line was cut by the range
    return text[-lines:]


def _last_bytes(response: Any, limit: int) -> bytes:
    """At most the last `limit` bytes of a body, in bounded memory even if Range was ignored."""
    tail = b""
    while chunk := response.read(64 * 1024):
        tail = (tail + chunk)[-limit:]
    return tail


def _is_timeout(exc: Exception) -> bool:
    text = str(exc).lower()
    return isinstance(exc, TimeoutError) or "did not respond in time" in text or "timed out" in text


def _translate(exc: Exception, what: str, where: str, api_key: str) -> BotError:
    """One clean line for a client failure; 'not found' and rejected keys are bad input."""
    detail = exception_line(exc, [api_key])
    lowered = detail.lower()
    if _is_timeout(exc):
        return OperationFailed(f"W&B at {where} did not answer in time while {what}")
    if "could not find" in lowered or "not found" in lowered:
        return BadInput(f"W&B: {detail} (while {what})")
    if type(exc).__name__ == "AuthenticationError":
        return BadInput(f"W&B at {where} rejected the API key while {what}: {detail}")
    return OperationFailed(f"W&B request failed while {what}: {detail}")
