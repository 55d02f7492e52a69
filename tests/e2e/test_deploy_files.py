"""The deploy files' own commands, run here in a plain virtual environment (there is no
container daemon on this machine): the Dockerfile's install, its CMD and HEALTHCHECK with its
ENV, and the systemd unit's ExecStart with its Environment (checked by `systemd-analyze verify`
where it is installed). What this cannot check — the image build, the non-root user, the
volume, systemd's sandboxing options — the README's "Deploy" lists."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest

from bot.launchers.sandbox import tool as sandbox_tool
from tests.support.net import free_port
from tests.support.paths import REPO_ROOT

pytestmark = pytest.mark.slow


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", "\n".join(line for line in dockerfile.splitlines() if not line.startswith("#")))
    return [(line.split(None, 1)[0], line.split(None, 1)[1]) for line in text.splitlines() if line.strip()]


def docker_env(found: list[tuple[str, str]]) -> dict[str, str]:
    pairs = [value for name, value in found if name == "ENV"]
    return dict(re.findall(r"(\w+)=(\S+)", " ".join(pairs)))


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv that sees this environment's installed dependencies (the machine may be offline),
    with the project installed by the Dockerfile's own `pip install` line from a copy of its build context."""
    root = tmp_path_factory.mktemp("deploy")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    [site] = list((venv / "lib").glob("python*/site-packages"))
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    context = root / "context"
    context.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, context / name)
    for name in ("bot", "handlers"):
        shutil.copytree(REPO_ROOT / name, context / name, ignore=shutil.ignore_patterns("__pycache__"))
    found = instructions((REPO_ROOT / "Dockerfile").read_text())
    [install] = [value for name, value in found if name == "RUN" and value.startswith("pip install")]
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    subprocess.run(["sh", "-c", f"{install} -q"], cwd=context, env=env, check=True)
    return venv


def start(command: str, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sh", "-c", f"exec {command}"], env=env, cwd=cwd, stderr=subprocess.DEVNULL)


def wait_healthy(check: str, env: dict[str, str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while subprocess.run(["sh", "-c", check], env=env, capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, "the healthcheck never passed"
        time.sleep(0.5)


def clean_env(venv: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "FIX_AND_RELAUNCH_", "PYTHON"))}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", HOME=str(venv.parent), **values)
    if sandbox_tool.check().tool is None:
        env["FIX_AND_RELAUNCH_UNSANDBOXED_JOBS"] = "i-understand"
    return env


def test_the_dockerfile_commands_install_serve_and_pass_the_healthcheck(venv, tmp_path):
    found = instructions((REPO_ROOT / "Dockerfile").read_text())
    assert found[0] == ("FROM", "python:3.11-slim") and ("USER", "bot") in found
    assert ("VOLUME", '["/var/lib/fix-and-relaunch"]') in found
    image_env = docker_env(found)
    port = free_port()
    state = tmp_path / "state"
    env = clean_env(venv, **{**image_env, "FIX_AND_RELAUNCH_STATE_DIR": str(state), "PORT": str(port)})
    [cmd] = [value for name, value in found if name == "CMD"]
    [health] = [value for name, value in found if name == "HEALTHCHECK"]
    check = health.split(" CMD ", 1)[1]
    server = start(cmd, env, tmp_path)
    try:
        wait_healthy(check, env)
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
        assert "Register the GitHub App" in page and "default_permissions" in page  # app.yml shipped in the package
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    assert (venv / "bin" / "fix-and-relaunch").exists()


def test_the_systemd_unit_starts_the_server_it_names(venv, tmp_path):
    unit = (REPO_ROOT / "deploy" / "fix-and-relaunch.service").read_text()
    port = free_port()
    unit = unit.replace("/opt/fix-and-relaunch", str(venv)).replace("--port 8080", f"--port {port}")
    values = dict(re.findall(r"^Environment=(\w+)=(\S+)$", unit, re.M))
    assert values["FIX_AND_RELAUNCH_STATE_DIR"] == "/var/lib/fix-and-relaunch"
    assert re.search(r"^StateDirectory=fix-and-relaunch$", unit, re.M)
    values["FIX_AND_RELAUNCH_STATE_DIR"] = str(tmp_path / "state")  # systemd's StateDirectory, here
    if shutil.which("systemd-analyze"):
        (tmp_path / "fix-and-relaunch.service").write_text(unit)
        verify = subprocess.run(
            ["systemd-analyze", "verify", str(tmp_path / "fix-and-relaunch.service")], capture_output=True, text=True
        )
        assert verify.returncode == 0 and "fix-and-relaunch.service" not in verify.stderr, verify.stderr
    [exec_start] = re.findall(r"^ExecStart=(.+)$", unit, re.M)
    env = clean_env(venv, **values)
    server = start(exec_start, env, tmp_path)
    try:
        wait_healthy(
            f"python -c \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/healthz')\"", env
        )
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
