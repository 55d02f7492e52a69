"""What `serve` says at start-up about the sandbox: the tool, and which limits hold here."""

from __future__ import annotations

import logging
import os

from bot.core.settings import Settings
from bot.launchers.sandbox import cgroups, tool
from bot.launchers.sandbox.limits import WATCH_INTERVAL_S
from bot.launchers.sandbox.policy import operator_caps, required
from bot.launchers.sandbox.run import OPT_OUT

log = logging.getLogger(__name__)


def enforcement() -> dict[str, str]:
    """How each limit is enforced on this host, as measured (cgroups tried, the uid known)."""
    groups = cgroups.available()
    root = os.geteuid() == 0
    memory = groups.get("memory")
    pids = groups.get("pids")
    if pids:
        processes = f"the job's processes together (pids cgroup v{pids.version})"
    elif root:
        processes = "NOT enforced: the bot runs as root (exempt from RLIMIT_NPROC) and cannot make a pids cgroup"
    else:
        processes = "all processes of the bot's user (RLIMIT_NPROC)"
    return {
        "memory": f"the job's processes together (memory cgroup v{memory.version}); OUT_OF_MEMORY reported"
        if memory
        else "each process (RLIMIT_DATA: allocations fail with MemoryError)",
        "processes": processes,
        "cpu_time": "each process (RLIMIT_CPU)",
        "disk": f"the growth of the job's disks, checked every {WATCH_INTERVAL_S:g} s; each file (RLIMIT_FSIZE); /tmp's size",
        "wall_time": f"checked every {WATCH_INTERVAL_S:g} s",
    }


def serve_settings(settings: Settings) -> Settings:
    """`serve`'s settings: `launch.sandbox: auto` means on. Says at start-up how repository code
    will run; BadInput when the operator's limits do not parse."""
    settings = settings.with_sandbox(auto=True)
    caps = operator_caps(settings)
    found = tool.check()
    if found.tool is None and settings.sandbox.unsandboxed_ok:
        log.warning(
            "sandbox: %s. %s is set: local and command jobs, launch.setup and verify.smoke run UNSANDBOXED, "
            "as the bot's user, able to read its key, its state and every clone",
            found.problem,
            OPT_OUT,
        )
    elif found.tool is None:
        log.error(
            "sandbox: %s. Local and command jobs, launch.setup and verify.smoke will be REFUSED; use a cluster "
            "backend (slurm, ray, wandb-launch), install bubblewrap, or set %s",
            found.problem,
            OPT_OUT,
        )
    else:
        off = "refused" if required(settings) else "allowed (FIX_AND_RELAUNCH_SANDBOX=optional)"
        holds = "; ".join(f"{name}: {how}" for name, how in enforcement().items())
        log.info(
            "sandbox: %s; repository code runs in it (launch.sandbox: off is %s); operator caps: %s; limits hold for %s",
            found.tool.version,
            off,
            caps.describe(),
            holds,
        )
    return settings
