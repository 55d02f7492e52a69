"""A local W&B server for tests: GraphQL over `POST /graphql`, as the real `wandb` client speaks it.

The pinned wandb (0.31) sends every public-API call through its `wandb-core` sidecar, so
the operations answered here are the ones that sidecar and `wandb/apis/public` really send
(found by reading their query strings and by logging requests). Each request is recorded
(`FakeWandb.requests`) so tests can assert what the client asked. An operation the fake
does not know gets a GraphQL error, and is recorded too, so gaps show up instead of hiding.

Start it with `with FakeWandb() as server:` and point the client at `server.url`
(`WANDB_BASE_URL` or `wandb.Api(overrides={"base_url": server.url})`).
"""

from __future__ import annotations

import base64
import functools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

_OPERATION = re.compile(r"\b(query|mutation)\s+(\w+)")


@dataclass
class FakeRun:
    """One run as the server holds it. `id` is W&B's run id (the `name` field on the wire)."""

    id: str
    entity: str
    project: str
    name: str = ""
    state: str = "finished"
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    commit: str | None = None
    created_at: float = 0.0
    heartbeat_at: float = 0.0
    log: str = ""
    tags: list[str] = field(default_factory=list)
    metadata: dict | None = None  # wandb-metadata.json: git remote and commit, host, …

    def files(self) -> dict[str, bytes]:
        """The run's files as the server stores them."""
        out = {"output.log": self.log.encode()} if self.log else {}
        if self.metadata is not None:
            out["wandb-metadata.json"] = json.dumps(self.metadata).encode()
        return out

    @property
    def storage_id(self) -> str:
        return base64.b64encode(f"Run:v1:{self.id}:{self.project}:{self.entity}".encode()).decode()

    @property
    def last_step(self) -> int:
        return max((row["_step"] for row in self.history), default=-1)

    def log_lines(self) -> list[str]:
        return self.log.splitlines()

    def raw_config(self) -> dict:
        """Config as W&B stores it: every key wrapped as {"value": …, "desc": null}."""
        wrapped = {key: {"value": value, "desc": None} for key, value in self.config.items()}
        wrapped["_wandb"] = {"value": {"cli_version": "0.31.0", "python_version": "3.11"}, "desc": None}
        return wrapped

    def summary_metrics(self) -> dict:
        extra = (
            {"_step": self.last_step, "_runtime": self.heartbeat_at - self.created_at, "_timestamp": self.heartbeat_at}
            if self.history
            else {}
        )
        return {**extra, **self.summary}

    def history_keys(self) -> dict:
        keys = sorted({key for row in self.history for key in row})
        return {
            "keys": {key: {"typeCounts": [{"type": "number", "count": len(self.history)}]} for key in keys},
            "lastStep": self.last_step,
        }

    def node(self) -> dict:
        """Every field of the client's RunFragment; the client ignores what it did not select."""
        return {
            "id": self.storage_id,
            "name": self.id,
            "displayName": self.name or self.id,
            "projectId": "1",
            "tags": self.tags,
            "sweepName": None,
            "state": self.state,
            "config": json.dumps(self.raw_config()),
            "group": None,
            "jobType": None,
            "commit": self.commit,
            "readOnly": False,
            "createdAt": _iso(self.created_at),
            "heartbeatAt": _iso(self.heartbeat_at),
            "description": None,
            "notes": None,
            "systemMetrics": "{}",
            "summaryMetrics": json.dumps(self.summary_metrics()),
            "historyLineCount": len(self.history),
            "user": {"name": "Test User", "username": self.entity},
            "historyKeys": self.history_keys(),
        }


@dataclass
class Request:
    """One recorded request: GraphQL operation (or HTTP method + path) and its variables."""

    operation: str
    variables: dict
    query: str = ""
    path: str = "/graphql"
    headers: dict = field(default_factory=dict)


class GraphQLError(Exception):
    pass


def _iso(seconds: float) -> str:
    # W&B answers naive UTC timestamps without a zone designator.
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


class FakeWandb:
    """In-memory W&B: entities → projects → runs, served on 127.0.0.1 from a background thread."""

    def __init__(self, *, entity: str = "test-entity", api_key: str | None = None) -> None:
        self.entity = entity
        self.api_key = api_key  # when set, requests with another key get 401
        self.runs: dict[tuple[str, str, str], FakeRun] = {}
        self.projects: set[tuple[str, str]] = set()  # (entity, project); add_run adds its own
        self.requests: list[Request] = []
        self.delay = 0.0  # seconds to stall each GraphQL answer (timeout tests)
        self.honour_ranges = True  # False: answer file GETs in full, like a server ignoring Range
        self.extra_operations: dict[str, Callable[[dict], dict]] = {}  # name -> handler(variables)
        self._clock = 1_700_000_000.0
        self._httpd: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeWandb:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd = None

    def __enter__(self) -> FakeWandb:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # ---- model -----------------------------------------------------------------------------
    def add_project(self, project: str, entity: str | None = None) -> None:
        self.projects.add((entity or self.entity, project))

    def add_run(
        self,
        id: str,
        *,
        project: str,
        entity: str | None = None,
        history: list[dict] | None = None,
        created_at: float | None = None,
        heartbeat_at: float | None = None,
        **fields: Any,
    ) -> FakeRun:
        """Add a run; runs added later are newer unless `created_at` says otherwise."""
        self._clock += 60
        created = self._clock if created_at is None else created_at
        rows = [{"_step": i, **row} if "_step" not in row else dict(row) for i, row in enumerate(history or [])]
        run = FakeRun(
            id=id,
            entity=entity or self.entity,
            project=project,
            history=rows,
            created_at=created,
            heartbeat_at=created + 30 if heartbeat_at is None else heartbeat_at,
            **fields,
        )
        self.runs[(run.entity, run.project, run.id)] = run
        self.add_project(run.project, run.entity)
        return run

    def find_run(self, entity: str, project: str, run_id: str) -> FakeRun | None:
        return self.runs.get((entity, project, run_id))

    def operations(self) -> list[str]:
        return [r.operation for r in self.requests]

    def requests_for(self, operation: str) -> list[Request]:
        return [r for r in self.requests if r.operation == operation]

    # ---- GraphQL -----------------------------------------------------------------------------
    def execute(self, body: dict) -> dict:
        query = body.get("query") or ""
        variables = body.get("variables") or {}
        match = _OPERATION.search(query)
        name = body.get("operationName") or (match.group(2) if match else "anonymous")
        handler = self.extra_operations.get(name)
        if handler is None and name in _OPERATIONS:
            handler = functools.partial(_OPERATIONS[name], self)
        if handler is None:
            return {"data": None, "errors": [{"message": f"fake wandb: unsupported operation {name}"}]}
        try:
            return {"data": handler(variables)}
        except GraphQLError as exc:
            return {"data": None, "errors": [{"message": str(exc)}]}

    def _run_for(self, variables: dict, key: str = "name") -> FakeRun | None:
        return self.find_run(variables["entity"], variables["project"], variables.get(key) or "")

    def _viewer(self, variables: dict) -> dict:
        return {
            "viewer": {
                "id": "VXNlcjox",
                "entity": self.entity,
                "username": self.entity,
                "email": "test@example.com",
                "flags": "{}",
                "teams": {"edges": []},
            }
        }

    def _server_features(self, variables: dict) -> dict:
        return {"serverInfo": {"features": []}}

    def _runs(self, variables: dict) -> dict:
        entity, project = variables["entity"], variables["project"]
        if (entity, project) not in self.projects:
            return {"project": None}
        filters = json.loads(variables.get("filters") or "{}")
        found = [r for (e, p, _), r in self.runs.items() if e == entity and p == project and _matches(r, filters)]
        found = _ordered(found, variables.get("order") or "+created_at")
        start = int(variables.get("cursor") or 0)
        page = found[start : start + int(variables.get("perPage") or 50)]
        edges = [{"node": r.node(), "cursor": str(start + i + 1)} for i, r in enumerate(page)]
        return {
            "project": {
                "internalId": "1",
                "runCount": len(found),
                "readOnly": False,
                "runs": {
                    "edges": edges,
                    "pageInfo": {
                        "endCursor": edges[-1]["cursor"] if edges else None,
                        "hasNextPage": start + len(page) < len(found),
                    },
                },
            }
        }

    def _run(self, variables: dict) -> dict:
        run = self._run_for(variables)
        return {"project": {"run": run.node() if run else None}}

    def _history_keys(self, variables: dict) -> dict:
        run = self._run_for(variables)
        return {"project": {"run": {"historyKeys": run.history_keys()} if run else None}}

    def _history_page(self, variables: dict) -> dict:
        run = self._run_for(variables, "run")
        if run is None:
            return {"project": {"run": None}}
        low, high, size = int(variables["minStep"]), int(variables["maxStep"]), int(variables["pageSize"])
        rows = [r for r in run.history if low <= r["_step"] < high][:size]
        return {"project": {"run": {"history": [json.dumps(r) for r in rows]}}}

    def _parquet_history(self, variables: dict) -> dict:
        # No exported parquet files: everything is "live" data, as for a fresh run.
        run = self._run_for(variables, "runName")
        if run is None:
            return {"project": {"run": None}}
        keys = variables.get("liveKeys") or []
        live = [{k: row[k] for k in keys if k in row} for row in run.history]
        return {"project": {"run": {"parquetHistory": {"parquetUrls": [], "liveData": live}}}}

    def _full_history(self, variables: dict) -> dict:
        run = self._run_for(variables)
        rows = run.history[-int(variables.get("samples") or 500) :] if run else []
        return {"project": {"run": {"history": [json.dumps(r) for r in rows]} if run else None}}

    def _sampled_history(self, variables: dict) -> dict:
        # RunSampledHistory sends `specs`, wandb-core's SampledHistoryPage one `spec`.
        run = self._run_for(variables) or self._run_for(variables, "run")
        if run is None:
            return {"project": {"run": None}}
        specs = variables.get("specs") or [variables["spec"]]
        return {"project": {"run": {"sampledHistory": [_sample(run.history, json.loads(s)) for s in specs]}}}

    def _console_log_tail(self, variables: dict) -> dict:
        run = self._run_for(variables, "runName")
        if run is None:
            return {"project": {"run": None}}
        lines = run.log_lines()
        first = max(0, len(lines) - int(variables["last"]))
        return {
            "project": {
                "run": {
                    "logLineCount": len(lines),
                    "logLines": {"edges": [_log_edge(first + i, line) for i, line in enumerate(lines[first:])]},
                }
            }
        }

    def _console_log_page(self, variables: dict) -> dict:
        run = self._run_for(variables, "runName")
        if run is None:
            return {"project": {"run": None}}
        lines = run.log_lines()
        start = int(variables.get("after") or 0)
        end = min(len(lines), start + int(variables.get("first") or 1000))
        edges = [_log_edge(i, lines[i]) for i in range(start, end)]
        return {
            "project": {
                "run": {
                    "logLineCount": len(lines),
                    "logLines": {"edges": edges, "pageInfo": {"endCursor": str(end), "hasNextPage": end < len(lines)}},
                }
            }
        }

    def _run_files(self, variables: dict) -> dict:
        run = self._run_for(variables)
        if run is None:
            return {"project": {"internalId": "1", "run": None}}
        stored = run.files()
        names = variables.get("fileNames") or list(stored)
        files = [self._file_node(run, n) for n in names if n in stored]
        return {
            "project": {
                "internalId": "1",
                "run": {
                    "fileCount": len(files),
                    "files": {
                        "edges": [{"node": f, "cursor": str(i + 1)} for i, f in enumerate(files)],
                        "pageInfo": {"endCursor": str(len(files)) if files else None, "hasNextPage": False},
                    },
                },
            }
        }

    def _file_node(self, run: FakeRun, name: str) -> dict:
        url = f"{self.url}/files/{run.entity}/{run.project}/{run.id}/{name}"
        return {
            "id": f"file-{run.id}-{name}",
            "name": name,
            "url": url,
            "directUrl": url,
            "sizeBytes": len(run.files()[name]),
            "mimetype": "text/plain",
            "updatedAt": _iso(run.heartbeat_at),
            "md5": "",
        }

    def _delete_run(self, variables: dict) -> dict:
        found = [key for key, run in self.runs.items() if run.storage_id == variables.get("id")]
        if not found:
            raise GraphQLError("run not found")
        with self._lock:
            del self.runs[found[0]]
        return {"deleteRun": {"clientMutationId": None}}

    def _run_state(self, variables: dict) -> dict:
        run = self._run_for(variables)
        return {"project": {"run": {"state": run.state} if run else None}}

    # ---- plain HTTP: file downloads, with Range, as a signed storage URL would answer ------------
    def file_bytes(self, path: str) -> bytes | None:
        parts = [unquote(p) for p in path.split("/")[2:]]
        if len(parts) != 4:
            return None
        run = self.find_run(*parts[:3])
        return run.files().get(parts[3]) if run else None


_OPERATIONS: dict[str, Callable[..., dict]] = {
    "Viewer": FakeWandb._viewer,
    "ServerFeaturesQuery": FakeWandb._server_features,
    "Runs": FakeWandb._runs,
    "Run": FakeWandb._run,
    "RunState": FakeWandb._run_state,
    "RunHistoryKeys": FakeWandb._history_keys,
    "HistoryPage": FakeWandb._history_page,
    "RunParquetHistory": FakeWandb._parquet_history,
    "RunFullHistory": FakeWandb._full_history,
    "RunSampledHistory": FakeWandb._sampled_history,
    "SampledHistoryPage": FakeWandb._sampled_history,
    "RunConsoleLogTail": FakeWandb._console_log_tail,
    "RunConsoleLogPage": FakeWandb._console_log_page,
    "RunFiles": FakeWandb._run_files,
    "DeleteRun": FakeWandb._delete_run,
}


def _sample(history: list[dict], spec: dict) -> list[dict]:
    """Rows that have every requested key, thinned evenly to `samples`, as W&B samples."""
    keys = spec.get("keys") or []
    rows = [{k: row[k] for k in keys} for row in history if all(k in row for k in keys)]
    samples = int(spec.get("samples") or 500)
    if len(rows) <= samples:
        return rows
    return [rows[round(i * (len(rows) - 1) / (samples - 1))] for i in range(samples)] if samples > 1 else rows[-1:]


def _log_edge(number: int, line: str) -> dict:
    return {
        "node": {"number": number, "timestamp": "2024-01-01T00:00:00.000000", "level": "", "label": "", "line": line}
    }


# ---- run filters: the subset of W&B's MongoDB-style filters that tests use ----------------------
def _field(run: FakeRun, path: str) -> Any:
    head, _, rest = path.partition(".")
    if head == "config":
        key, _, sub = rest.partition(".")
        value = run.raw_config().get(key)
        # W&B accepts both config.key and config.key.value.
        return value.get("value") if value is not None and sub in ("", "value") else None
    if head in ("summary_metrics", "summaryMetrics"):
        return run.summary_metrics().get(rest)
    plain = {
        "state": run.state,
        "name": run.id,
        "displayName": run.name,
        "commit": run.commit,
        "tags": run.tags,
        "createdAt": _iso(run.created_at),
        "created_at": run.created_at,
        "heartbeat_at": run.heartbeat_at,
        "username": run.entity,
    }
    return plain.get(path)


def _condition(value: Any, cond: Any) -> bool:
    if not isinstance(cond, dict):
        return value == cond or (isinstance(value, list) and cond in value)
    tests = {
        "$eq": lambda arg: value == arg,
        "$ne": lambda arg: value != arg,
        "$in": lambda arg: value in arg,
        "$nin": lambda arg: value not in arg,
        "$gt": lambda arg: value is not None and value > arg,
        "$gte": lambda arg: value is not None and value >= arg,
        "$lt": lambda arg: value is not None and value < arg,
        "$lte": lambda arg: value is not None and value <= arg,
        "$exists": lambda arg: (value is not None) == bool(arg),
        "$regex": lambda arg: isinstance(value, str) and re.search(arg, value) is not None,
    }
    for op, arg in cond.items():
        if op not in tests:
            raise GraphQLError(f"fake wandb: unsupported filter operator {op}")
        if not tests[op](arg):
            return False
    return True


def _matches(run: FakeRun, filters: dict) -> bool:
    for key, cond in filters.items():
        if key == "$and" and not all(_matches(run, f) for f in cond):
            return False
        if key == "$or" and not any(_matches(run, f) for f in cond):
            return False
        if key == "$nor" and any(_matches(run, f) for f in cond):
            return False
        if not key.startswith("$") and not _condition(_field(run, key), cond):
            return False
    return True


def _ordered(runs: list[FakeRun], order: str) -> list[FakeRun]:
    descending = order.startswith("-")
    key = order.lstrip("+-")
    if key.startswith("config.") and key.endswith(".value"):
        key = key[: -len(".value")]
    return sorted(runs, key=lambda r: (_field(r, key) is None, _field(r, key) or 0, r.created_at), reverse=descending)


# ---- HTTP plumbing -------------------------------------------------------------------------------
def _handler_for(server: FakeWandb) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.startswith("/sdk/otel/"):  # wandb-core's own telemetry
                return self._send(200, b"", "application/x-protobuf")
            if self.path != "/graphql":
                server.requests.append(Request(f"POST {self.path}", {}, path=self.path, headers=dict(self.headers)))
                return self._send(404, b"not found")
            if not self._authorized():
                return self._send(401, json.dumps({"errors": [{"message": "invalid api key"}]}).encode())
            request = json.loads(body or b"{}")
            answer = server.execute(request)
            match = _OPERATION.search(request.get("query") or "")
            name = request.get("operationName") or (match.group(2) if match else "anonymous")
            server.requests.append(
                Request(name, request.get("variables") or {}, request.get("query") or "", headers=dict(self.headers))
            )
            if server.delay:
                time.sleep(server.delay)
            self._send(200, json.dumps(answer).encode())

        def do_GET(self) -> None:
            server.requests.append(
                Request(
                    f"GET {self.path}", {"range": self.headers.get("Range")}, path=self.path, headers=dict(self.headers)
                )
            )
            data = server.file_bytes(self.path)
            if data is None:
                return self._send(404, b"not found", "text/plain")
            byte_range = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range") or "")
            if byte_range is None or not server.honour_ranges:
                return self._send(200, data, "text/plain")
            start, end = _range(byte_range, len(data))
            self._send(206, data[start : end + 1], "text/plain", {"Content-Range": f"bytes {start}-{end}/{len(data)}"})

        def _authorized(self) -> bool:
            if server.api_key is None:
                return True
            expected = base64.b64encode(f"api:{server.api_key}".encode()).decode()
            return self.headers.get("Authorization") == f"Basic {expected}"

        def _send(
            self, status: int, data: bytes, content_type: str = "application/json", headers: dict | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (timeout tests)

    return Handler


def _range(match: re.Match, size: int) -> tuple[int, int]:
    first, last = match.group(1), match.group(2)
    if not first:  # suffix range: the last N bytes
        return max(0, size - int(last)), size - 1
    return int(first), min(size - 1, int(last)) if last else size - 1
