"""Control groups for a job's memory and process limits, where this process may make them.

A cgroup limits the job's processes together and says afterwards whether the kernel killed one
for memory; rlimits (the fallback) are per process. Cgroups are used only where they already
are writable to the bot: v1 hierarchies (a root bot on most hosts and containers), or a v2
group that already delegates the controller to the bot's group or its children (systemd:
Delegate=memory pids, the bot in a sub-group of its service). Only v1 is tried here by tests.
Nothing here changes the host's cgroup set-up.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

CONTROLLERS = ("memory", "pids")
PREFIX = "fix-and-relaunch-"


@dataclass(frozen=True)
class Controller:
    name: str  # memory | pids
    version: int  # 1 or 2
    base: str  # the folder the bot's run groups are made in

    def group(self, name: str) -> Path:
        return Path(self.base) / (PREFIX + re.sub(r"[^\w.-]", "_", name))

    def limit_files(self, value: int) -> list[tuple[str, str]]:
        """(file, value) pairs that set the limit; the first must succeed, the rest may not exist."""
        if self.name == "pids":
            return [("pids.max", str(value))]
        if self.version == 1:
            return [("memory.limit_in_bytes", str(value)), ("memory.memsw.limit_in_bytes", str(value))]
        return [("memory.max", str(value)), ("memory.swap.max", "0")]

    @property
    def events_file(self) -> tuple[str, str]:
        """Where the kernel counts the limit being hit, and the counter's name."""
        if self.name == "pids":
            return "pids.events", "max"
        return ("memory.oom_control" if self.version == 1 else "memory.events"), "oom_kill"


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(root, mount point, fs type, super options) of each cgroup mount."""
    found = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        found.append((fields[3], fields[4], tail[0], set(tail[2].split(","))))
    return found


def _own_groups() -> dict[str, str]:
    """This process's cgroup path per controller ("" for the v2 unified one)."""
    groups: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return groups
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for name in parts[1].split(",") if parts[1] else [""]:
            groups[name] = parts[2]
    return groups


def _under(mount_root: str, mount_point: str, path: str) -> Path | None:
    if path != mount_root and not path.startswith(mount_root.rstrip("/") + "/"):
        return None
    return Path(mount_point) / path[len(mount_root) :].lstrip("/")


def _candidates(name: str) -> list[Controller]:
    groups, found = _own_groups(), []
    for root, point, fstype, options in _mounts():
        if fstype == "cgroup" and name in options and name in groups:
            base = _under(root, point, groups[name])
            if base is not None:
                found.append(Controller(name, 1, str(base)))
        elif fstype == "cgroup2" and "" in groups:
            own = _under(root, point, groups[""])
            # Its own group (a container's root group), or the parent that delegates to it: runs
            # go beside the bot, since a v2 group with processes cannot have limited children.
            for base in (own, own.parent if own is not None and own != Path(point) else None):
                if base is not None and name in _read(base / "cgroup.subtree_control").split():
                    found.append(Controller(name, 2, str(base)))
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _usable(controller: Controller) -> bool:
    trial = controller.group(f"probe-{os.getpid()}")
    try:
        trial.mkdir()
    except OSError:
        return False
    try:
        return (trial / controller.limit_files(1)[0][0]).exists()
    finally:
        _remove(trial)


@functools.cache
def available() -> dict[str, Controller]:
    """The controllers this process can make run groups with, by name; tried once."""
    usable = {}
    for name in CONTROLLERS:
        for controller in _candidates(name):
            if _usable(controller):
                usable[name] = controller
                break
    return usable


def create(controller: Controller, group: Path, limit: int) -> Path:
    """The fresh group `group` (see Controller.group), limited; OSError when it cannot be made."""
    if group.exists():
        remove(group)
    group.mkdir()
    (first, value), *rest = controller.limit_files(limit)
    (group / first).write_text(value)
    for file, value in rest:
        try:
            (group / file).write_text(value)
        except OSError:
            pass  # no swap accounting here: the first limit is the one that matters
    return group


def events(controller: Controller, group: Path) -> int:
    """How many times the limit was hit (oom kills, refused forks)."""
    file, counter = controller.events_file
    for line in _read(group / file).splitlines():
        key, _, count = line.partition(" ")
        if key == counter and count.strip().isdigit():
            return int(count)
    return 0


def remove(group: Path) -> None:
    """Kill anything left in the group, then remove it (best effort)."""
    for _ in range(250):  # 5 s: the last processes of a killed job take a moment to go
        pids = [int(p) for p in _read(group / "cgroup.procs").split() if p.isdigit()]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if _remove(group):
            return
        time.sleep(0.02)


def _remove(group: Path) -> bool:
    try:
        group.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True
