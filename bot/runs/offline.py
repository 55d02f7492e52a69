"""Offline W&B runs: the `wandb/offline-run-<time>-<id>/` folders a local job leaves behind.

Everything but the console log is read from the run's `.wandb` record log (see wandb_file.py).
One scan of a log is cached by (path, size, mtime), so listing many runs repeatedly is cheap;
the state of a run with no exit record depends on the clock and is worked out per call.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from bot.core.errors import BadInput
from bot.diagnosis.tail import clean_line, tail_lines
from bot.runs.model import RunInfo
from bot.runs.wandb_file import RecordReader

RUNNING_WINDOW = 300.0  # seconds since the last write within which a run without an exit is "running"
_FOLDER = re.compile(r"^(?:offline-)?run-(\d{8}_\d{6})-([A-Za-z0-9_-]+)$")  # ids may hold - and _

Roots = Callable[[str | None], list[Path]] | list[Path]


@dataclass(frozen=True)
class _Facts:
    """What one scan of a run log says, independent of the clock."""

    run_id: str | None = None
    name: str | None = None
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    commit: str | None = None
    created_at: float | None = None
    exit_code: int | None = None
    rows: int = 0
    console_bytes: int = 0


def read_run(
    run_dir: Path, *, branch_key: str = "branch", running_window: float = RUNNING_WINDOW, now: float | None = None
) -> RunInfo:
    """One offline-run folder as a RunInfo; BadInput when it is not a readable run folder."""
    run_dir = Path(run_dir)
    log = run_log(run_dir)
    stat = log.stat()
    facts = _facts(log, stat)
    folder_time, folder_id = _folder_name_parts(run_dir.name)
    updated_at = max([stat.st_mtime] + _mtimes(run_dir / "files" / "output.log"))
    now = time.time() if now is None else now
    config = _copy(facts.config)
    branch = config.get(branch_key)
    return RunInfo(
        id=facts.run_id or folder_id or log.stem.removeprefix("run-"),
        state=_state(facts.exit_code, updated_at, now, running_window),
        branch=branch if isinstance(branch, str) else None,
        commit=facts.commit,
        name=facts.name,
        config=config,
        summary=_copy(facts.summary),
        exit_code=facts.exit_code,
        created_at=facts.created_at or folder_time,
        updated_at=updated_at,
        steps=facts.rows,
        path=str(run_dir),
        source="offline",
    )


def run_log(run_dir: Path) -> Path:
    """The folder's `run-<id>.wandb` file; BadInput when there is none."""
    if not run_dir.is_dir():
        raise BadInput(f"no run folder at {run_dir}")
    logs = sorted(run_dir.glob("run-*.wandb"))
    if not logs:
        raise BadInput(f"{run_dir} holds no .wandb run log")
    return logs[0]


def read_history(run_dir: Path, rows: int = 10) -> list[dict]:
    """The last `rows` history rows, oldest first; memory is bounded by `rows`."""
    if rows <= 0:
        return []
    last: deque[dict] = deque(maxlen=rows)
    for record in RecordReader(run_log(Path(run_dir))):
        if record.WhichOneof("record_type") == "history":
            last.append({_flat_key(item): _value(item.value_json) for item in record.history.item})
    return list(last)


def read_first_history(run_dir: Path, rows: int = 3) -> list[dict]:
    """The first `rows` history rows: where the run started. Reading stops once they are found."""
    first: list[dict] = []
    if rows <= 0:
        return first
    for record in RecordReader(run_log(Path(run_dir))):
        if record.WhichOneof("record_type") == "history":
            first.append({_flat_key(item): _value(item.value_json) for item in record.history.item})
            if len(first) >= rows:
                break
    return first


def read_log_tail(run_dir: Path, lines: int = 200) -> list[str]:
    """The last `lines` console lines: files/output.log, or, for a run that never recorded its
    exit, the log's console records when they hold more (wandb-core died before writing
    output.log out, as with a hard kill before its next flush)."""
    if lines <= 0:
        return []
    run_dir = Path(run_dir)
    output = run_dir / "files" / "output.log"
    size = output.stat().st_size if output.is_file() else 0
    log = run_log(run_dir)
    facts = _facts(log, log.stat())
    if facts.exit_code is None and facts.console_bytes > size:
        return _console_tail(log, lines)
    return tail_lines(output, lines) if size else []


class OfflineRunStore:
    """RunStore over offline run folders found under `roots`.

    `roots` are `wandb/` folders or run folders, as a list or as a function of the branch.
    A run is the branch's when its config[branch_key] names it or, with no such key, when
    `commits_on_branch(commit, branch)` says the run's commit is on the branch. Without that
    function a run whose config names no branch is attributed to no branch.
    """

    def __init__(
        self,
        roots: Roots,
        *,
        branch_key: str = "branch",
        commits_on_branch: Callable[[str, str], bool] | None = None,
        running_window: float = RUNNING_WINDOW,
    ) -> None:
        self._roots = roots
        self.branch_key = branch_key
        self.commits_on_branch = commits_on_branch
        self.running_window = running_window

    def runs(self, branch: str | None = None) -> list[RunInfo]:
        found = [self._read(d) for d in self._run_dirs(branch)]
        mine = [run for run in found if run is not None and self._belongs(run, branch)]
        return sorted(mine, key=lambda run: run.created_at or 0.0, reverse=True)

    def get(self, run_id: str) -> RunInfo:
        for run_dir in self._run_dirs(None):
            if run_dir.name.endswith(f"-{run_id}"):
                return self._read_or_raise(run_dir)
        for run in self.runs():  # a folder renamed by hand still carries its id inside
            if run.id == run_id:
                return run
        raise BadInput(f"no offline run with id {run_id}")

    def history(self, run: RunInfo, rows: int = 10) -> list[dict]:
        return read_history(self._path(run), rows)

    def first_history(self, run: RunInfo, rows: int = 3) -> list[dict]:
        return read_first_history(self._path(run), rows)

    def log_tail(self, run: RunInfo, lines: int = 200) -> list[str]:
        return read_log_tail(self._path(run), lines)

    def delete(self, run: RunInfo) -> None:
        path = self._path(run).resolve()
        roots = [r.resolve() for r in self._root_list(run.branch) + self._root_list(None)]
        if not any(path == root or root in path.parents for root in roots):
            raise BadInput(f"refusing to delete {path}: it is not under the run folders")
        run_log(path)  # only ever remove something that is a run folder
        shutil.rmtree(path)

    def _read(self, run_dir: Path) -> RunInfo | None:
        try:
            return self._read_or_raise(run_dir)
        except BadInput:
            return None  # a half-created or foreign folder does not stop a listing

    def _read_or_raise(self, run_dir: Path) -> RunInfo:
        return read_run(run_dir, branch_key=self.branch_key, running_window=self.running_window)

    def _belongs(self, run: RunInfo, branch: str | None) -> bool:
        if branch is None:
            return True
        if self.branch_key in run.config:
            return run.config[self.branch_key] == branch
        if run.commit is None or self.commits_on_branch is None:
            return False
        return self.commits_on_branch(run.commit, branch)

    def _root_list(self, branch: str | None) -> list[Path]:
        roots = self._roots(branch) if callable(self._roots) else self._roots
        return [Path(root) for root in roots]

    def _run_dirs(self, branch: str | None) -> list[Path]:
        seen: dict[Path, Path] = {}
        for root in self._root_list(branch):
            for run_dir in _run_dirs_in(root):
                seen.setdefault(run_dir.resolve(), run_dir)
        return list(seen.values())

    @staticmethod
    def _path(run: RunInfo) -> Path:
        if not run.path:
            raise BadInput(f"run {run.id} has no local folder")
        return Path(run.path)


def _run_dirs_in(root: Path) -> Iterable[Path]:
    """`root` itself when it is a run folder, else its run-folder children (not `latest-run`)."""
    if not root.is_dir():
        return []
    if any(root.glob("run-*.wandb")):
        return [root]
    return sorted(d for d in root.iterdir() if _FOLDER.match(d.name) and d.is_dir() and not d.is_symlink())


def _state(exit_code: int | None, updated_at: float, now: float, window: float) -> str:
    if exit_code is not None:
        return "finished" if exit_code == 0 else "failed"
    return "running" if now - updated_at <= window else "crashed"


def _facts(log: Path, stat: os.stat_result) -> _Facts:
    return _scan(str(log), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=1024)
def _scan(path: str, size: int, mtime_ns: int) -> _Facts:
    """Fold a run log's records into _Facts; size and mtime are only the cache key."""
    state: dict = {"config": {}, "summary": {}, "rows": 0, "console_bytes": 0}
    for record in RecordReader(Path(path)):
        handler = _HANDLERS.get(record.WhichOneof("record_type"))
        if handler:
            handler(getattr(record, record.WhichOneof("record_type")), state)
    config = {k: _unwrap(v) for k, v in state.pop("config").items() if k != "_wandb"}
    summary = {k: v for k, v in state.pop("summary").items() if k != "_wandb"}
    return _Facts(config=config, summary=summary, **state)


def _on_run(run, state: dict) -> None:
    state["run_id"] = run.run_id or None
    state["name"] = run.display_name or None
    _apply(state["config"], run.config.update, run.config.remove)
    if run.git.commit:
        state["commit"] = run.git.commit
    if run.HasField("start_time"):
        state["created_at"] = run.start_time.seconds + run.start_time.nanos / 1e9


def _on_environment(env, state: dict) -> None:
    if env.git.commit and not state.get("commit"):
        state["commit"] = env.git.commit
    if env.HasField("started_at") and not state.get("created_at"):
        state["created_at"] = env.started_at.seconds + env.started_at.nanos / 1e9


def _on_config(config, state: dict) -> None:
    _apply(state["config"], config.update, config.remove)


def _on_summary(summary, state: dict) -> None:
    _apply(state["summary"], summary.update, summary.remove)


def _on_history(history, state: dict) -> None:
    state["rows"] += 1


def _on_exit(exit_record, state: dict) -> None:
    state["exit_code"] = exit_record.exit_code


def _on_output(output, state: dict) -> None:
    state["console_bytes"] += len(output.line.encode())


_HANDLERS = {
    "run": _on_run,
    "environment": _on_environment,
    "config": _on_config,
    "summary": _on_summary,
    "history": _on_history,
    "exit": _on_exit,
    "output_raw": _on_output,
    "output": _on_output,
}


def _apply(target: dict, updates, removes) -> None:
    """Apply W&B config/summary items; a nested_key path sets a value inside nested dicts."""
    for item in updates:
        *parents, leaf = _key_path(item)
        _descend(target, parents)[leaf] = _value(item.value_json)
    for item in removes:
        *parents, leaf = _key_path(item)
        _descend(target, parents).pop(leaf, None)


def _descend(target: dict, parents: list[str]) -> dict:
    for key in parents:
        child = target.get(key)
        if not isinstance(child, dict):
            child = target[key] = {}
        target = child
    return target


def _key_path(item) -> list[str]:
    return list(item.nested_key) or [item.key]


def _flat_key(item) -> str:
    return ".".join(_key_path(item))  # as W&B's public API flattens nested history keys


def _value(value_json: str):
    try:
        return json.loads(value_json)
    except ValueError:
        return value_json


def _unwrap(value):
    """config.yaml's {"desc": ..., "value": x} form, should a record ever carry it, is just x."""
    if isinstance(value, dict) and "value" in value and set(value) <= {"value", "desc"}:
        return value["value"]
    return value


def _copy(value):
    """A fresh copy of decoded JSON, so callers cannot change the cached scan."""
    return json.loads(json.dumps(value))


def _folder_name_parts(name: str) -> tuple[float | None, str | None]:
    match = _FOLDER.match(name)
    if not match:
        return None, None
    stamp = time.mktime(time.strptime(match.group(1), "%Y%m%d_%H%M%S"))  # wandb names it in local time
    return stamp, match.group(2)


def _mtimes(path: Path) -> list[float]:
    try:
        return [path.stat().st_mtime]
    except OSError:
        return []


def _console_tail(log: Path, lines: int) -> list[str]:
    """The console tail rebuilt from output records: their `line`s are stream fragments."""
    last: deque[str] = deque(maxlen=lines)
    partial = ""
    for record in RecordReader(log):
        kind = record.WhichOneof("record_type")
        if kind not in ("output_raw", "output"):
            continue
        *done, partial = (partial + getattr(record, kind).line).split("\n")
        last.extend(clean_line(line) for line in done)
    if partial:
        last.append(clean_line(partial))
    return list(last)
