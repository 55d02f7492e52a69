"""A real single-node Ray cluster for the tests, started once per test session.

The head runs in its own process group, on free ports and its own temp dir, so it neither
meets nor stops a Ray cluster the user (or another test session) has running; teardown ends
that process group only (`ray stop` would stop every Ray process of the user).

Without ray installed the tests that need it skip, saying how to enable them; with CI=true
a missing ray fails them instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.env import CREDENTIALS
from tests.support.net import free_port

ENABLE_HINT = "ray is not installed; run `bash .ci/install-ray.sh` to enable the Ray launcher tests"
START_TIMEOUT_S = 60.0


def require_ray() -> None:
    """Skip (fail under CI=true) when ray's job server client cannot be imported."""
    try:
        import ray.job_submission  # noqa: F401
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(ENABLE_HINT, pytrace=False)
        pytest.skip(ENABLE_HINT)


def _ray_cli() -> str:
    beside = Path(sys.executable).with_name("ray")
    return str(beside) if beside.exists() else (shutil.which("ray") or "ray")


def _head_env() -> dict[str, str]:
    # Jobs inherit the head's environment: keep real credentials out of it.
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIALS and not k.startswith("RAY_")}
    env.update({"RAY_USAGE_STATS_ENABLED": "0", "WANDB_MODE": "offline", "WANDB_SILENT": "true"})
    return env


def _wait_for_jobs_api(address: str, head: subprocess.Popen, log: Path) -> None:
    from ray.job_submission import JobSubmissionClient

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray head exited with {head.returncode}:\n{log.read_text()[-3000:]}")
        try:
            JobSubmissionClient(address).list_jobs()
            return
        except Exception:
            time.sleep(0.5)
    raise RuntimeError(
        f"the Ray jobs API at {address} did not answer in {START_TIMEOUT_S:g}s:\n{log.read_text()[-3000:]}"
    )


def _stop(head: subprocess.Popen) -> None:
    """End the head's whole process group: SIGTERM, then SIGKILL what is left."""
    for sig, wait_s in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(head.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            head.poll()  # reap the leader: a zombie still counts as a group member
            try:
                os.killpg(head.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """The jobs API address of a fresh local Ray head (http://127.0.0.1:<port>)."""
    require_ray()
    temp = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))  # short: Ray's socket paths must fit
    dashboard = free_port()
    ports = {
        "--port": free_port(),
        "--dashboard-port": dashboard,
        "--ray-client-server-port": free_port(),
        "--dashboard-agent-listen-port": free_port(),
        "--dashboard-agent-grpc-port": free_port(),
        "--runtime-env-agent-port": free_port(),
        "--metrics-export-port": free_port(),
        "--node-manager-port": free_port(),
        "--object-manager-port": free_port(),
    }
    args = [
        _ray_cli(),
        "start",
        "--head",
        "--block",
        "--dashboard-host=127.0.0.1",
        "--node-ip-address=127.0.0.1",
        "--num-cpus=2",
        "--include-dashboard=true",
        "--disable-usage-stats",
        "--object-store-memory=100000000",
        f"--temp-dir={temp}",
        *(f"{flag}={port}" for flag, port in ports.items()),
    ]
    log = temp / "head.log"
    with open(log, "wb") as out:
        head = subprocess.Popen(
            args,
            env=_head_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    address = f"http://127.0.0.1:{dashboard}"
    try:
        _wait_for_jobs_api(address, head, log)
        yield address
    finally:
        _stop(head)
        shutil.rmtree(temp, ignore_errors=True)
