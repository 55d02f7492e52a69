"""Hostile jobs against the sandbox, launched as the server launches them: serve's settings
(the sandbox on), the bot's own clone under its state dir, the App's key in a file, another
repository's clone beside it; while the server answers requests. Each job is contained, the
server keeps serving, and the run ends failed with a reason the diagnosis reads."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import yaml

import handlers
from bot.app.queue import Queue
from bot.app.server import make_app
from bot.core.settings import Settings
from bot.diagnosis import diagnose_lines
from bot.launchers.sandbox import serve_settings
from bot.loop.launch import launch_branch, wait_for
from bot.loop.repo_context import RepoContext
from bot.repo.publish import clone_for_server
from bot.store.runs import DB_NAME, RunRecord
from tests.support.git_repos import make_origin
from tests.support.sandbox import require_sandbox

KEY_MARKER = "-----BEGIN RSA PRIVATE KEY----- hostile-test-key"
ENV_MARKER = "aws-secret-hostile-test"
OTHER_MARKER = "alice-private-hostile-test"
HOSTILE = (Path(__file__).parents[1] / "support" / "hostile_job.py").read_text()
webhook_app = functools.partial(make_app, router=handlers.router, wandb_handler=handlers.wandb.handle)


@dataclass
class Bot:
    settings: Settings
    ctx: RepoContext
    key_file: Path
    other_clone: Path
    outside: Path  # a folder of the host beside the bot's state: no job may write there


def branch_files(mode: str, *args: object, **sandbox: object) -> dict[str, str]:
    config = {
        "launch": {"command": " ".join([sys.executable, "hostile.py", mode, *map(str, args)]), "sandbox": sandbox}
    }
    return {".github/fix-and-relaunch.yml": yaml.safe_dump(config)}


@pytest.fixture
def bot(tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Bot:
    require_sandbox()
    key_file = tmp_path / "keys" / "app.pem"
    key_file.parent.mkdir()
    key_file.write_text(KEY_MARKER)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ENV_MARKER)  # a variable of the bot's no job may get
    settings = serve_settings(replace(settings, sandbox=replace(settings.sandbox, hidden=(str(key_file),))))
    (tmp_path / "alice").mkdir()
    (tmp_path / "mallory").mkdir()
    other_origin, _ = make_origin(tmp_path / "alice", files={"secret.txt": OTHER_MARKER}, name="private")
    other_clone = clone_for_server(settings.state_dir, "alice/private", f"file://{other_origin}")
    outside = tmp_path / "outside"
    outside.mkdir()
    state = settings.state_dir
    targets = [key_file, state / DB_NAME, other_clone / ".git" / "config", Path("/etc/shadow")]
    branches = {
        "read": branch_files("read", *targets),
        "write": branch_files(
            "write",
            state / "owned",
            other_clone / "owned",
            outside / "owned",
            "/tmp/owned",
            other_clone.parent.parent / "mallory" / "hostile" / ".git" / "owned",
            "in-worktree",
        ),
        "signal": branch_files("signal"),
        "forkbomb": branch_files("forkbomb", processes=64, wall_time="3s"),
        "bigfile": branch_files("bigfile", disk="32M"),
        "manyfiles": branch_files("manyfiles", disk="64M"),
        "memory": branch_files("memory", memory="256M"),
        "connect": branch_files("connect", "127.0.0.1", 1, network="off"),
    }
    origin, _ = make_origin(tmp_path / "mallory", files={"hostile.py": HOSTILE}, branches=branches, name="hostile")
    clone = clone_for_server(state, "mallory/hostile", f"file://{origin}")
    return Bot(settings, RepoContext.open(settings, clone), key_file, other_clone, outside)


async def run_while_serving(aiohttp_client, bot: Bot, branch: str) -> tuple[RunRecord, str]:
    """Launch the branch's job and wait for its end in a thread, while the server answers
    /healthz every 0.2 s; the run's record and its log."""
    client = await aiohttp_client(webhook_app(bot.settings, queue=Queue.from_settings(bot.settings)))
    job = asyncio.create_task(asyncio.to_thread(lambda: wait_for(bot.ctx, launch_branch(bot.ctx, branch), timeout=90)))
    answers = []
    while not job.done():
        answers.append((await client.get("/healthz")).status)
        await asyncio.sleep(0.2)
    record = await job
    answers.append((await client.get("/healthz")).status)
    assert set(answers) == {200}, "the server kept answering while the job ran"
    return record, Path(record.log_path).read_text(errors="replace")


def category(bot: Bot, record: RunRecord) -> str:
    runs = bot.ctx.runs(record.branch)
    return diagnose_lines(runs.log_tail(runs.get(record.id))).category


def reached(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("REACHED")]


async def test_a_job_reads_no_key_no_state_no_other_clone_and_no_bot_environment(aiohttp_client, bot):
    record, log = await run_while_serving(aiohttp_client, bot, "read")

    assert "running in the sandbox" in log
    assert reached(log) == []
    assert log.count("BLOCKED") >= 4
    for secret in (KEY_MARKER, ENV_MARKER, OTHER_MARKER, "SQLite format", bot.settings.github_webhook_secret):
        assert secret not in log
    environ_lines = [line for line in log.splitlines() if line.startswith("ENVIRON")]
    assert environ_lines and all("hostile.py" in line or "bwrap" not in line for line in environ_lines)
    assert "AWS_SECRET_ACCESS_KEY" not in log and "GITHUB" not in log.split("ENV ", 1)[1].splitlines()[0]
    assert record.state == "finished"


async def test_a_job_writes_only_its_worktree(aiohttp_client, bot):
    record, log = await run_while_serving(aiohttp_client, bot, "write")

    worktree = bot.ctx.workspace.worktree_path("write")
    assert "REACHED in-worktree" in reached(log)
    assert (worktree / "in-worktree").read_text() == "owned\n"
    # The rest went to its private /tmp (where the test's folders are) or was refused: not to the host.
    for path in (
        bot.settings.state_dir / "owned",
        bot.other_clone / "owned",
        bot.outside / "owned",
        Path("/tmp/owned"),
    ):
        assert not path.exists(), path
    assert record.state == "finished"


async def test_a_job_cannot_see_or_signal_the_bot(aiohttp_client, bot):
    record, log = await run_while_serving(aiohttp_client, bot, "signal")

    visible = json.loads(next(line for line in log.splitlines() if line.startswith("VISIBLE")).split(" ", 1)[1])
    assert visible == [1, 2], "only its pid namespace: the sandbox's init and itself"
    assert os.getpid() not in visible or os.getpid() <= 2
    assert record.state == "failed" and record.ended_at is not None, "the supervisor outlived it and recorded its end"


async def test_a_fork_bomb_stops_at_its_process_limit_and_its_wall_time(aiohttp_client, bot):
    started = time.monotonic()
    record, log = await run_while_serving(aiohttp_client, bot, "forkbomb")

    assert record.state == "failed"
    assert record.handle["end_reason"].startswith("TIMEOUT: it ran past its wall-time limit of 3s")
    assert time.monotonic() - started < 30
    assert "Resource temporarily unavailable" in log, "the process limit held"
    assert category(bot, record) == "infra"
    assert subprocess.run(["true"]).returncode == 0, "the bot can still start processes"


@pytest.mark.parametrize("branch,limit", [("bigfile", 32 << 20), ("manyfiles", 64 << 20)])
async def test_a_job_filling_the_disk_stops_at_its_disk_limit(aiohttp_client, bot, branch, limit):
    record, log = await run_while_serving(aiohttp_client, bot, branch)

    worktree = bot.ctx.workspace.worktree_path(branch)
    written = sum(p.stat().st_size for p in worktree.glob("*.bin"))
    assert record.state == "failed"
    assert record.handle["end_reason"].startswith("Disk quota exceeded:")
    assert written <= limit + (512 << 20), f"wrote {written} bytes past a {limit}-byte limit"
    assert category(bot, record) == "infra"


async def test_a_job_over_its_memory_is_killed_and_reported_as_oom(aiohttp_client, bot):
    record, log = await run_while_serving(aiohttp_client, bot, "memory")

    assert record.state == "failed"
    assert "HOLDING" in log
    assert "OUT_OF_MEMORY" in record.handle.get("end_reason", "") or "MemoryError" in log
    assert category(bot, record) == "oom"


async def test_a_job_with_network_off_reaches_nothing(aiohttp_client, bot):
    record, log = await run_while_serving(aiohttp_client, bot, "connect")

    assert "BLOCKED 127.0.0.1 1" in log and reached(log) == []
