"""A local stand-in for the Anthropic Messages API, for tests and offline demos.

It speaks the wire format the real `anthropic` client expects (POST /v1/messages, `tool_use`
content blocks, usage with cache fields, `{"type": "error", ...}` bodies with their status
codes) and records every request, so a test can assert on exactly what was sent.

    with FakeAnthropic() as fake:
        fake.script(tool_answer({...}), error(529, "overloaded_error", "Overloaded"))
        client = anthropic.Anthropic(api_key="test", base_url=fake.url)

Prompt caching is imitated: the first request with a given cached prefix (tools + system, up to
the last `cache_control` marker there) reports it as `cache_creation_input_tokens`, later ones as
`cache_read_input_tokens`. Token counts are estimated at 4 characters a token; the real API's
minimum cacheable size is not imitated.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

_ids = itertools.count(1)
TEST_KEY = "sk-ant-test-key-0000000000"


@dataclass
class Reply:
    status: int
    body: Any  # JSON-able, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    usage: dict[str, int] | None = None  # overrides the estimated usage of a message


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]  # lower-cased names
    raw: bytes

    @property
    def body(self) -> dict:
        return json.loads(self.raw)

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8", "replace")


def tool_answer(
    tool_input: Any,
    *,
    name: str = "propose_fix",
    text: str | None = None,
    usage: dict[str, int] | None = None,
    stop_reason: str = "tool_use",
) -> Reply:
    """A message whose content is a `tool_use` block (preceded by `text`, if given)."""
    content: list[dict] = [{"type": "text", "text": text}] if text else []
    content.append({"type": "tool_use", "id": f"toolu_{next(_ids):04d}", "name": name, "input": tool_input})
    return Reply(
        200,
        {"type": "message", "role": "assistant", "content": content, "stop_reason": stop_reason, "stop_sequence": None},
        usage=usage,
    )


def text_answer(text: str, *, usage: dict[str, int] | None = None) -> Reply:
    return Reply(
        200,
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
        },
        usage=usage,
    )


def error(status: int, kind: str, message: str, *, retry_after_ms: int | None = 10) -> Reply:
    """An API error as Anthropic sends it, e.g. error(529, "overloaded_error", "Overloaded")."""
    headers = {"retry-after-ms": str(retry_after_ms)} if retry_after_ms is not None else {}
    return Reply(status, {"type": "error", "error": {"type": kind, "message": message}}, headers)


def overloaded() -> Reply:
    return error(529, "overloaded_error", "Overloaded")


class FakeAnthropic:
    """The server: a queue of scripted replies, then `default` (a 500 unless set)."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.replies: list[Reply] = []
        self.default: Reply | None = None
        self._seen_prefixes: set[str] = set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def always(self, reply: Reply) -> None:
        self.default = reply

    @property
    def bodies(self) -> list[dict]:
        return [r.body for r in self.requests if r.path == "/v1/messages"]

    def __enter__(self) -> FakeAnthropic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- serving ---------------------------------------------------------------------------

    def _next(self) -> Reply:
        with self._lock:
            if self.replies:
                return self.replies.pop(0)
        return self.default or error(500, "api_error", "fake_anthropic: no scripted reply left", retry_after_ms=None)

    def _answer(self, path: str, headers: dict[str, str], raw: bytes) -> Reply:
        self.requests.append(Recorded(path, headers, raw))
        if path != "/v1/messages":
            return error(404, "not_found_error", f"Not found: {path}", retry_after_ms=None)
        if not api_key(headers) or not headers.get("anthropic-version"):
            return error(
                401, "authentication_error", "an API key and anthropic-version are required", retry_after_ms=None
            )
        try:
            request = json.loads(raw)
        except ValueError:
            return error(400, "invalid_request_error", "body is not JSON", retry_after_ms=None)
        problem = _invalid(request)
        if problem:
            return error(400, "invalid_request_error", problem, retry_after_ms=None)
        reply = self._next()
        if reply.status == 200 and isinstance(reply.body, dict):
            body = dict(reply.body, id=f"msg_{next(_ids):06d}", model=request["model"])
            body["usage"] = reply.usage or self._usage(request, reply.body)
            reply = Reply(200, body, reply.headers)
        return reply

    def _usage(self, request: dict, answer: dict) -> dict[str, int]:
        prefix = _cached_prefix(request)
        with self._lock:
            hit = prefix in self._seen_prefixes
            self._seen_prefixes.add(prefix)
        cached = len(prefix) // 4 if prefix else 0
        return {
            "input_tokens": len(json.dumps(request.get("messages", []))) // 4,
            "output_tokens": max(1, len(json.dumps(answer["content"])) // 4),
            "cache_creation_input_tokens": 0 if hit else cached,
            "cache_read_input_tokens": cached if hit else 0,
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = fake._answer(self.path.split("?")[0], headers, raw)
                data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.send_header("request-id", f"req_{next(_ids):06d}")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def api_key(headers: dict[str, str]) -> str | None:
    """The key a request carries: `x-api-key`, or `Authorization: Bearer` as newer clients send it."""
    bearer = headers.get("authorization", "")
    return headers.get("x-api-key") or (bearer[7:] if bearer.lower().startswith("bearer ") else None)


def _invalid(request: dict) -> str | None:
    """The request-shape checks the real API makes that matter to a client under test."""
    for key in ("model", "max_tokens", "messages"):
        if key not in request:
            return f"{key}: Field required"
    messages = request["messages"]
    if not messages or messages[0].get("role") != "user":
        return "messages: the first message must use the user role"
    for before, after in zip(messages, messages[1:], strict=False):
        if before.get("role") == after.get("role"):
            return "messages: roles must alternate between user and assistant"
    for i, message in enumerate(messages):
        if not message.get("content"):
            return f"messages.{i}: content must be non-empty"
    choice = request.get("tool_choice") or {}
    if choice.get("type") == "tool" and choice.get("name") not in {t.get("name") for t in request.get("tools", [])}:
        return "tool_choice: the named tool is not in tools"
    return _unanswered_tool_use(messages)


def _unanswered_tool_use(messages: list[dict]) -> str | None:
    """Each assistant tool_use must be answered by a tool_result in the very next user turn."""
    for i, message in enumerate(messages[:-1]):
        if message["role"] != "assistant" or isinstance(message["content"], str):
            continue
        ids = {b["id"] for b in message["content"] if b.get("type") == "tool_use"}
        following = messages[i + 1]["content"]
        answered = (
            set()
            if isinstance(following, str)
            else {b.get("tool_use_id") for b in following if b.get("type") == "tool_result"}
        )
        if ids - answered:
            return f"messages.{i + 1}: tool_use ids were found without tool_result blocks: {sorted(ids - answered)}"
    return None


def _cached_prefix(request: dict) -> str:
    """The tools and system text up to (and including) the last cache_control marker."""
    parts: list[Any] = list(request.get("tools", []))
    system = request.get("system")
    parts += system if isinstance(system, list) else ([{"type": "text", "text": system}] if system else [])
    marked = [i for i, part in enumerate(parts) if isinstance(part, dict) and part.get("cache_control")]
    return json.dumps(parts[: marked[-1] + 1]) if marked else ""


@contextmanager
def serving(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAnthropic]:
    """A FakeAnthropic that the bot reaches as a user would configure it: ANTHROPIC_API_KEY and
    ANTHROPIC_BASE_URL in the environment (for the test's duration)."""
    with FakeAnthropic() as fake:
        monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
        yield fake
