"""How a local job ended, as evidence (issue 10, point 2): its exit status when a signal killed
it, and the kernel's OOM kills in its memory cgroup while it ran."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

from bot.core.settings import Settings
from bot.launchers import procs
from bot.launchers.local import LocalLauncher
from tests.support.launchers import wait_for_end
from tests.unit.launchers.test_local import BASE_ENV, make_spec

PY = shlex.quote(sys.executable)


def fake_cgroup(root: Path, kills: int) -> Path:
    """A copy of this process's memory-cgroup counter under `root`, in its v1 and v2 places:
    the file the kernel would bump. Returns the v1 file (both hold the same count)."""
    lines = Path(f"/proc/{os.getpid()}/cgroup").read_text().splitlines()
    files = []
    for line in lines:
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0" and not controllers:
            files.append(root / path.lstrip("/") / "memory.events")
        elif "memory" in controllers.split(","):
            files.append(root / "memory" / path.lstrip("/") / "memory.oom_control")
    for file in files:
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(f"oom 0\noom_kill {kills}\n")
    return files[0]


class Supervised(LocalLauncher):
    """The local launcher, its supervisor reading cgroup files from a test folder."""

    def __init__(self, settings: Settings, cgroup_root: Path):
        super().__init__(settings, base_env=BASE_ENV)
        self.cgroup_root = cgroup_root

    def supervisor_options(self) -> dict[str, Any]:
        return {"cgroup_root": str(self.cgroup_root)}


def test_the_oom_kill_count_is_read_from_either_cgroup_version(tmp_path):
    fake_cgroup(tmp_path, 3)
    assert procs.oom_kills(os.getpid(), cgroup_root=tmp_path) == 3
    assert procs.oom_kills(os.getpid(), cgroup_root=tmp_path / "nothing-here") is None
    assert procs.oom_kills(2**22 + 12345, cgroup_root=tmp_path) is None, "no such process"


def test_a_job_killed_while_its_cgroup_counts_an_oom_kill_says_so(settings, worktree, tmp_path):
    counter = fake_cgroup(tmp_path / "cgroup", 0)
    bump = " ".join(f"echo 'oom_kill 1' > {shlex.quote(str(f))};" for f in (tmp_path / "cgroup").rglob("memory.*"))
    launcher = Supervised(settings, tmp_path / "cgroup")
    handle = launcher.launch(make_spec(worktree, f"echo step 1; {bump} kill -9 $$"))
    status = wait_for_end(launcher, handle)
    assert (status.state, status.exit_code) == ("failed", 137)
    assert status.reason is not None and status.reason.startswith("OOM: the kernel's OOM killer killed 1")
    assert counter.read_text().endswith("oom_kill 1\n")


def test_a_job_killed_without_oom_kills_gives_only_its_exit_status(settings, worktree, tmp_path):
    fake_cgroup(tmp_path / "cgroup", 5)
    launcher = Supervised(settings, tmp_path / "cgroup")
    handle = launcher.launch(make_spec(worktree, f"{PY} -c 'import os, signal; os.kill(os.getpid(), signal.SIGTERM)'"))
    status = wait_for_end(launcher, handle)
    assert (status.state, status.exit_code, status.reason) == ("failed", 143, None)
