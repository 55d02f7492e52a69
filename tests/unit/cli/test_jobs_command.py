"""`fix-and-relaunch jobs list|show|cancel` on a state directory a server would use."""

from __future__ import annotations

import json
import time

import pytest

from bot.app.jobs import FixJob
from bot.app.queue import Queue
from bot.cli.main import main
from bot.core.settings import Settings
from bot.loop.waits import Wait


def fix_job(branch: str) -> FixJob:
    return FixJob(repo="acme/exp", branch=branch, clone_url="https://github.com/acme/exp.git", installation_id=1, pr=3)


@pytest.fixture
def queue(monkeypatch, tmp_path):
    monkeypatch.setenv("FIX_AND_RELAUNCH_STATE_DIR", str(tmp_path / "state"))
    q = Queue.from_settings(Settings.from_env())
    yield q
    q.close()


def test_list_and_show(queue, capsys):
    first = queue.enqueue(fix_job("exp-a")).job_id
    queue.enqueue(fix_job("exp-b"))
    queue.record_step(first, "1:decision", {"tokens": {"input": 100, "output": 20}, "cost_usd": 0.02})
    assert main(["jobs", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "kind", "status", "what", "steps", "attempts", "updated"]
    assert [line.split()[:4] for line in lines[1:]] == [
        ["2", "fix", "queued", "acme/exp#exp-b"],
        ["1", "fix", "queued", "acme/exp#exp-a"],
    ]
    assert main(["jobs", "list", "--json", "--status", "queued"]) == 0
    assert [j["branch"] for j in json.loads(capsys.readouterr().out)] == ["exp-b", "exp-a"]

    assert main(["jobs", "show", str(first)]) == 0
    shown = capsys.readouterr().out
    assert "job 1: fix, queued" in shown and "1:decision" in shown and "LLM: 100 in, 20 out, $0.0200" in shown
    assert main(["jobs", "show", str(first), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["llm"]["cost_usd"] == 0.02


def test_an_empty_queue_and_an_unknown_job(queue, capsys):
    assert main(["jobs", "list"]) == 0
    assert capsys.readouterr().out == "no jobs\n"
    assert main(["jobs", "show", "42"]) == 2
    assert main(["jobs", "cancel", "42"]) == 2
    assert "no job 42" in capsys.readouterr().err


def test_cancel_a_queued_job_a_running_one_and_a_finished_one(queue, capsys):
    queued = queue.enqueue(fix_job("exp-a")).job_id
    running = queue.enqueue(fix_job("exp-b")).job_id
    assert queue.claim(lane=fix_job("exp-b").lane).id == running

    assert main(["jobs", "cancel", str(queued)]) == 0
    assert capsys.readouterr().out == f"job {queued}: cancelled\n"
    assert queue.get(queued).status == "cancelled"
    assert main(["jobs", "cancel", str(running)]) == 0
    assert capsys.readouterr().out == f"job {running}: asked to stop\n"
    assert queue.cancel_requested(running) and queue.get(running).status == "running"
    queue.finish(running)  # the pipeline stops: a job cancelled while running stays running → done
    done = queue.enqueue(fix_job("exp-c")).job_id
    queue.claim(lane=fix_job("exp-c").lane)
    queue.finish(done)
    assert main(["jobs", "cancel", str(done)]) == 1
    assert "already finished" in capsys.readouterr().err


def test_cancel_a_waiting_job_wakes_it_flagged(queue, capsys):
    waiting = queue.enqueue(fix_job("exp-w")).job_id
    queue.claim(lane=fix_job("exp-w").lane)
    queue.park(waiting, Wait(run_id="r-1", target_steps=20, deadline=time.time() + 600, poll_s=2.0))
    assert main(["jobs", "cancel", str(waiting)]) == 0
    assert capsys.readouterr().out == f"job {waiting}: asked to stop\n"
    assert queue.get(waiting).status == "queued" and queue.cancel_requested(waiting)
