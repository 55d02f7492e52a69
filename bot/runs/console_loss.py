"""The training loss a job prints on its console, as rows for the loss verdicts (bot.runs.loss).

Trainers print their loss far more often than they log it: timm prints `Loss: 1.40e+04 (…)`
every few batches but logs `train_loss` to W&B once an epoch (an epoch's mean hides a loss
that exploded within it), and a job that does not log to W&B at all still prints
`step 10 | loss 3.08`. A run whose printed loss went non-finite or exploded has failed as
surely as one whose logged loss did (`printed_loss_problem`, a little more tolerant of noise).

What is read: on each line (and each `\\r`-separated progress update), every `<name>loss`
followed by a number (`loss 3.51`, `Loss: 2.21`, `train/loss=0.3`, `'loss': 2.3`,
`"train_loss": "0.7"`, `loss: tensor(2.3)`): one row per line, keyed by the names as printed
(lower-cased), so `loss_key` picks the training loss among several. Evaluation losses
(`val_loss`, `eval loss`, anything after `Test:` or `val` on its line) are left out, as in the
W&B history, and so are an indented or quoted lone `"loss": 2.3` (a dump of metrics whose
section the line does not show) and a traceback's source lines. A log is read incrementally, only what was appended since the
last read; a long one's middle is skipped: its first rows say where the loss started, its last
where it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.runs.loss import NOT_TRAINING

HEAD_ROWS = 3
TAIL_ROWS = 50
WINDOW = 4 << 20  # bytes read at most from each end of a log at once
_LOSS = re.compile(
    r"""(?<![\w/.-])(?P<name>(?:[A-Za-z][\w/.-]*?[_/.-])?loss)\b['"]?\s*[:=]?\s*['"]?(?:tensor\()?"""
    r"""(?P<value>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf(?:inity)?)\b)""",
    re.IGNORECASE,
)
# A line about evaluation: timm's `Test: [ 0/5]  Time: 0.5  Loss: 2.3`, `eval loss 1.2`.
_EVALUATING = re.compile(r"(?i)\b(?:val|valid|validation|validating|eval|evaluation|evaluating|test|testing)\b")
# One key and its value, indented or quoted: a line of a JSON or YAML dump.
_DUMPED_PAIR = re.compile(r"""^(?:\s+["']?|\s*["'])[\w/.-]+["']?\s*:\s*\S+?,?\s*$""")
_LINES = re.compile(r"[\r\n]+")
_FRAME = re.compile(r'^\s*File "[^"]+", line \d+')  # a traceback's frame: its next line is code


def losses_in_line(line: str) -> dict[str, float]:
    """The training losses a console line prints, by name; empty when it prints none."""
    if _DUMPED_PAIR.match(line):
        return {}
    found: dict[str, float] = {}
    for match in _LOSS.finditer(line):
        name = match["name"].lower()
        if name in found or NOT_TRAINING.search(name) or _EVALUATING.search(line[: match.start()]):
            continue
        found[name] = float(match["value"])
    return found


def printed_losses(text: str) -> Iterator[dict[str, float]]:
    """The training losses printed in `text`, one dict per line that prints any. A traceback's
    source lines (`    loss = 0.5 * mse`) are code, not output."""
    in_frame = False
    for line in _LINES.split(text):
        if in_frame:
            in_frame = False
            continue
        if _FRAME.match(line):
            in_frame = True
            continue
        found = losses_in_line(line)
        if found:
            yield found


@dataclass
class ConsoleLoss:
    """The printed loss rows of one log file, read incrementally (`_step`: the row's index)."""

    head: list[dict[str, Any]] = field(default_factory=list)
    tail: list[dict[str, Any]] = field(default_factory=list)
    offset: int = 0
    count: int = 0

    def rows(self, path: Path) -> list[dict[str, Any]]:
        """The log's first and last printed losses, oldest first."""
        self._read(path)
        return self.head + [row for row in self.tail if row["_step"] >= len(self.head)]

    def _read(self, path: Path) -> None:
        try:
            size = path.stat().st_size
        except OSError:
            return
        if size < self.offset:  # replaced or truncated: read it afresh
            self.head, self.tail, self.offset, self.count = [], [], 0, 0
        if size - self.offset <= 2 * WINDOW:
            self._scan(path, self.offset, whole_first_line=True)
            return
        # A long unread stretch (a first read of a long log): its start while the head is
        # short, then its end; the middle says nothing the two do not.
        if len(self.head) < HEAD_ROWS:
            self._scan(path, self.offset, whole_first_line=True)
        self._scan(path, size - WINDOW, whole_first_line=False)

    def _scan(self, path: Path, start: int, *, whole_first_line: bool) -> None:
        """Read up to WINDOW bytes from `start`, whole lines only (the last may still be
        written), and move the offset past them."""
        try:
            with open(path, "rb") as log:
                log.seek(start)
                chunk = log.read(WINDOW)
        except OSError:
            return
        skip = 0 if whole_first_line else chunk.find(b"\n") + 1  # landed mid-line: from the next
        end = chunk.rfind(b"\n") + 1
        if end <= skip:
            return
        self.offset = start + end
        for losses in printed_losses(chunk[skip:end].decode("utf-8", errors="replace")):
            self._add(losses)

    def _add(self, losses: dict[str, float]) -> None:
        row: dict[str, Any] = {"_step": self.count, **losses}
        self.count += 1
        if len(self.head) < HEAD_ROWS:
            self.head.append(row)
        self.tail.append(row)
        del self.tail[:-TAIL_ROWS]
