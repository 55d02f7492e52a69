"""The server's logs: one line per event, plain text or one JSON object a line
(`FIX_AND_RELAUNCH_LOG_FORMAT=json`), and an access log that leaves health probes out.

Redaction is not done here: `bot.core.secrets.redacted_logs` (installed by the command line)
redacts every record as it is made, so whatever a formatter here writes is already clean.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from aiohttp import web
from aiohttp.web_log import AccessLogger

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Probed every few seconds by orchestrators: a line each would drown the log.
QUIET_PATHS = frozenset({"/healthz"})


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: time (UTC, ISO 8601), level, logger, message, and
    the traceback (as one string) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


class OneLineFormatter(logging.Formatter):
    """The text format, with a message's or traceback's line breaks escaped: one line per event."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", "\\n")


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else OneLineFormatter(TEXT_FORMAT)


def configure(log_format: str) -> None:
    """The root logger at INFO, writing to stderr in `log_format` ("text" or "json")."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)


class QuietProbesAccessLogger(AccessLogger):
    """aiohttp's access log line, except for requests to QUIET_PATHS that succeeded."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if request.path in QUIET_PATHS and response.status < 400:
            return
        super().log(request, response, time)
