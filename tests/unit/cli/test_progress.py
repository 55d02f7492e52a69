"""Progress while a command waits: a live line on a terminal, a heartbeat elsewhere, silence
with --quiet, and never a byte on stdout."""

from __future__ import annotations

import io
import re
import time

from bot.cli.progress import TICK_S, Progress, elapsed
from bot.loop.progress import Poll, latest_loss


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_status_line_says_state_steps_loss_and_time():
    clock = Clock()
    progress = Progress(stream=io.StringIO(), terminal=False, clock=clock)
    progress.step("asking claude-sonnet-4-6 for a patch")
    clock.now += 42
    assert progress.status() == "asking claude-sonnet-4-6 for a patch · 42s"
    progress.poll(Poll("r1", "queued"))
    clock.now += 3
    assert progress.status() == "run r1 queued · 3s"
    progress.poll(Poll("r1", "running", steps=7, target=20, loss=0.123456))
    clock.now += 70
    assert progress.status() == "run r1 running · step 7/20 · loss 0.1235 · 1m13s"
    progress.poll(Poll("r1", "running", steps=30))
    assert progress.status() == "run r1 running · step 30 · 1m13s"
    assert elapsed(3725) == "1h02m"


def test_off_a_terminal_a_heartbeat_line_comes_at_least_every_interval(capsys):
    stream = io.StringIO()
    times: list[float] = []
    original = stream.write

    def write(text: str) -> int:
        times.append(time.monotonic())
        return original(text)

    stream.write = write  # type: ignore[method-assign]
    start = time.monotonic()
    with Progress(stream=stream, terminal=False, heartbeat_s=0.3) as progress:
        progress.step("watching run r1 for 20 steps")
        progress.poll(Poll("r1", "queued"))
        time.sleep(1.0)
        progress.poll(Poll("r1", "running", steps=1, target=20))
        time.sleep(1.0)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "· watching run r1 for 20 steps"
    assert lines[1].startswith("· run r1 queued · ")
    assert any(line.startswith("· run r1 running · step 1/20") for line in lines)
    assert len(lines) >= 5
    gaps = [b - a for a, b in zip([start, *times], times, strict=False)]
    assert max(gaps) < 0.3 + 2 * TICK_S, gaps  # the interval, rounded up to the heartbeat's ticks
    assert capsys.readouterr().out == ""


def test_quiet_prints_no_progress_but_still_notes():
    stream = io.StringIO()
    with Progress(quiet=True, stream=stream, terminal=False, heartbeat_s=0.1) as progress:
        progress.step("diagnosing")
        progress.poll(Poll("r1", "running"))
        time.sleep(0.3)
        progress.note("your checkout has uncommitted changes")
    assert stream.getvalue() == "note: your checkout has uncommitted changes\n"


def test_on_a_terminal_one_line_is_redrawn_and_lines_print_above_it(capsys):
    stream = io.StringIO()
    with Progress(stream=stream, terminal=True) as progress:
        progress.step("watching run r1 for 20 steps")
        progress.poll(Poll("r1", "running", steps=3, target=20, loss=0.5))
        time.sleep(0.8)
        drawn = stream.getvalue()
    assert progress.terminal
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn)
    assert "· watching run r1 for 20 steps" in plain
    assert "run r1 running · step 3/20 · loss 0.5 · 0s" in plain
    assert "\x1b[" in drawn and "\r" in drawn, "redrawn in place with terminal controls"
    assert plain.count("· watching run r1") == 1, "the activity line is printed once, above the live line"
    assert capsys.readouterr().out == ""


def test_latest_loss_reads_the_last_finite_loss():
    assert latest_loss([{"loss": 1.0}, {"loss": 0.5}, {"_step": 3}]) == 0.5
    assert latest_loss([{"train/loss": 2.0}, {"train/loss": float("nan")}]) == 2.0
    assert latest_loss([{"acc": 1}]) is None


def test_every_line_is_redacted():
    stream = io.StringIO()
    with Progress(stream=stream, terminal=False, redact=lambda text: text.replace("s3cr3t", "[REDACTED]")) as progress:
        progress.step("the model says: use token s3cr3t")
        progress.note("s3cr3t")
    assert "s3cr3t" not in stream.getvalue() and stream.getvalue().count("[REDACTED]") == 2


def test_an_activity_begun_is_shown_but_not_printed_as_a_line():
    clock = Clock()
    stream = io.StringIO()
    progress = Progress(stream=stream, terminal=False, clock=clock)
    progress.begin("fetching exp-a and launching it")
    clock.now += 6
    assert progress.status() == "fetching exp-a and launching it · 6s"
    assert stream.getvalue() == ""
