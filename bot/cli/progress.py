"""Progress on stderr while a command works and waits: a live line on a terminal, else a heartbeat.

On a terminal, one line is redrawn in place by rich's Live display: what the command is doing,
or the watched run's state, step/target, latest loss, and the time elapsed, which keeps ticking
while any call blocks. Elsewhere (a CI log, a pipe) a line is printed when a run's state changes
and at least every `HEARTBEAT_S` seconds, from a thread, so the log never goes quiet for longer
whatever the command waits on. The loop's own progress lines (`· diagnosing …`) print above.

`quiet` prints none of it. Nothing here writes to stdout, so `--json` output stays clean.

rich (Textualize; pip vendors it) is used for the terminal: it knows whether stderr is a
terminal (and honours NO_COLOR, TERM=dumb, FORCE_COLOR), redraws one line without flicker, and
prints other lines above it.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text

from bot.loop.progress import Poll

HEARTBEAT_S = 5.0  # a non-terminal stream hears from a waiting command at least this often
TICK_S = 0.25
_STATE_STYLES = {"running": "green", "finished": "bold green", "queued": "yellow", "failed": "red", "crashed": "red"}


class Progress:
    """The progress of one command. Use as a context manager; `step` and `poll` from any thread."""

    def __init__(
        self,
        *,
        quiet: bool = False,
        stream: TextIO | None = None,
        terminal: bool | None = None,
        heartbeat_s: float = HEARTBEAT_S,
        clock: Callable[[], float] = time.monotonic,
        redact: Callable[[str], str] = str,
    ) -> None:
        self.quiet = quiet
        self.redact = redact  # every line goes through it: a step may quote a model's or a log's text
        self.stream = stream or sys.stderr
        self.console = Console(file=self.stream, force_terminal=terminal, highlight=False, soft_wrap=True)
        self.terminal = self.console.is_terminal and not self.console.is_dumb_terminal
        self.heartbeat_s = heartbeat_s
        self.clock = clock
        self._lock = threading.Lock()  # the state below
        self._write_lock = threading.Lock()  # whole lines on a non-terminal stream
        self._activity = ""
        self._since = clock()
        self._poll: Poll | None = None
        self._watching_since = self._since
        self._last_line = self._since
        self._live: Live | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what the command reports ---------------------------------------------------------------

    def step(self, line: str) -> None:
        """A line of progress (`diagnosing run …`); it becomes the current activity."""
        with self._lock:
            self._activity, self._since, self._poll = line, self.clock(), None
        self._emit(f"· {line}")

    def begin(self, activity: str) -> None:
        """What the command is doing, shown on the live line and in heartbeats but not printed
        as a line of its own (a command that fails at once keeps its stderr to the error)."""
        with self._lock:
            self._activity, self._since, self._poll = activity, self.clock(), None

    def poll(self, poll: Poll) -> None:
        """The watched run as the last poll saw it; a new state is printed at once off a terminal."""
        with self._lock:
            previous = self._poll
            if previous is None or previous.run_id != poll.run_id:
                self._watching_since = self.clock()
            self._poll = poll
            changed = previous is None or previous.state != poll.state
        if changed and not self.terminal:
            self._emit(f"· {self.status()}")

    def note(self, line: str) -> None:
        """Something the user should know (`--quiet` does not silence it)."""
        if self.quiet:
            print(f"note: {self.redact(line)}", file=self.stream, flush=True)
        else:
            self._emit(f"note: {line}")

    def out(self, line: str) -> None:
        """A line of the command's own output, for stdout; on a terminal that also shows the
        live line, printed above it rather than through it."""
        line = self.redact(line)
        if self._live is not None and sys.stdout.isatty():
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            print(line, flush=True)

    def status(self) -> str:
        """The live line: the watched run, else the current activity, with the time elapsed."""
        poll = self._poll
        if poll is None:
            return f"{self._activity or 'working'} · {elapsed(self.clock() - self._since)}"
        parts = [f"run {poll.run_id} {poll.state}"]
        if poll.steps is not None:
            parts.append(f"step {poll.steps}/{poll.target}" if poll.target else f"step {poll.steps}")
        if poll.loss is not None:
            parts.append(f"loss {poll.loss:.4g}")
        parts.append(elapsed(self.clock() - self._watching_since))
        return " · ".join(parts)

    # -- showing it ---------------------------------------------------------------------------

    def __enter__(self) -> Progress:
        if self.quiet:
            return self
        if self.terminal:
            self._live = Live(self, console=self.console, refresh_per_second=1 / TICK_S, transient=True)
            self._live.start()
        else:
            self._thread = threading.Thread(target=self._heartbeat, name="progress-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._live is not None:
            self._live.stop()

    def __rich__(self) -> Text:
        """What the live line shows at each refresh (so the time elapsed ticks on its own).
        Called from rich's refresh thread, which holds rich's lock: it takes none of ours."""
        poll, text = self._poll, self.redact(self.status())
        line = Text(text, no_wrap=True, overflow="ellipsis")
        if poll is not None and poll.state in _STATE_STYLES:
            head = len(f"run {poll.run_id} {poll.state}")
            line.stylize(_STATE_STYLES[poll.state], head - len(poll.state), head)
        return line

    def _heartbeat(self) -> None:
        while not self._stop.wait(TICK_S):
            if self.clock() - self._last_line >= self.heartbeat_s:
                self._emit(f"· {self.status()}")

    def _emit(self, line: str) -> None:
        self._last_line = self.clock()
        if self.quiet:
            return
        line = self.redact(line)
        if self._live is not None:
            self.console.print(line, markup=False, highlight=False)
            return
        with self._write_lock:
            self.stream.write(line + "\n")
            self.stream.flush()


def elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
