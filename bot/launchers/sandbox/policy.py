"""What the sandbox is asked for: the repo config's `launch.sandbox`, the operator's caps, and
the decision for one repository's code on this host.

    launch:
      sandbox: on              # auto | on | off; or a mapping:
      sandbox:
        mode: auto             # auto: on under `serve`, off on the command line
        network: on            # off: the job gets a network of its own with only loopback
        memory: 16G            # the job's processes together (per process without a memory cgroup)
        processes: 4096        # processes and threads
        cpu_time: 24h          # per process
        disk: 50G              # what it may add to the disk its worktree is on
        wall_time: 48h         # from start to end
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from bot.core.errors import BadInput
from bot.core.settings import SandboxSettings

CONFIG_KEY = "launch.sandbox"
LIMITS_VARIABLE = "FIX_AND_RELAUNCH_SANDBOX_LIMITS"
REQUIRED_VARIABLE = "FIX_AND_RELAUNCH_SANDBOX"


class Mode(str, Enum):
    AUTO = "auto"
    ON = "on"
    OFF = "off"


class Network(str, Enum):
    ON = "on"
    OFF = "off"


_SIZE = re.compile(r"(?i)^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$")
_DURATION = re.compile(r"(?i)^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _number(value: Any, key: str, pattern: re.Pattern[str], units: dict[str, int], what: str) -> float:
    if isinstance(value, bool):
        raise BadInput(f"'{key}' must be {what}, got {value!r}")
    match = pattern.match(str(value).strip()) if isinstance(value, (int, float, str)) else None
    if match is None:
        raise BadInput(f"'{key}' must be {what}, got {value!r}")
    number = float(match.group(1)) * units[match.group(2).lower()]
    if number <= 0:
        raise BadInput(f"'{key}' must be more than zero, got {value!r}")
    return number


def parse_size(value: Any, key: str) -> int:
    """Bytes from 123, "512M", "16G", "1.5GiB"."""
    return int(_number(value, key, _SIZE, _SIZE_UNITS, "a size such as 512M or 16G"))


def parse_duration(value: Any, key: str) -> float:
    """Seconds from 90, "90s", "30m", "2h", "1d"."""
    return _number(value, key, _DURATION, _DURATION_UNITS, "a duration such as 90s, 30m or 2h")


def parse_count(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadInput(f"'{key}' must be a whole number of at least 1, got {value!r}")
    return value


def _on_off(value: Any, key: str) -> bool:
    """YAML reads a bare on/off as a boolean: take either spelling."""
    if isinstance(value, bool):
        return value
    if value in ("on", "off"):
        return value == "on"
    raise BadInput(f"'{key}' must be on or off, got {value!r}")


def show_size(n: int) -> str:
    for unit, size in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g}{unit}B"
    return f"{n}B"


def show_duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class Limits:
    """What a job may use; None: no limit of this kind."""

    memory: int | None = None  # bytes, its processes together (each, without a memory cgroup)
    processes: int | None = None  # processes and threads at once
    cpu_time: float | None = None  # CPU seconds, per process
    disk: int | None = None  # bytes it may add to the disk its worktree (and log) are on
    wall_time: float | None = None  # seconds from start to end

    @classmethod
    def parse(cls, values: Mapping[str, Any], where: str) -> Limits:
        parsed: dict[str, Any] = {}
        for name, value in values.items():
            parser = _PARSERS.get(name)
            if parser is None:
                raise BadInput(f"unknown key '{where}.{name}' (known: mode, network, {', '.join(_PARSERS)})")
            parsed[name] = parser(value, f"{where}.{name}")
        return cls(**parsed)

    @classmethod
    def from_text(cls, text: str | None, where: str) -> Limits:
        """Limits from "memory=32G, processes=4096" (the operator's caps)."""
        values: dict[str, str] = {}
        for item in (text or "").split(","):
            if not item.strip():
                continue
            name, sep, value = item.partition("=")
            if not sep:
                raise BadInput(f"{where}: expected name=value, got {item.strip()!r}")
            values[name.strip()] = value.strip()
        return cls.parse({k: int(v) if k == "processes" and v.isdigit() else v for k, v in values.items()}, where)

    def capped(self, caps: Limits) -> Limits:
        """Each limit no higher than the cap, and the cap where none is set."""
        changes = {}
        for f in fields(self):
            mine, cap = getattr(self, f.name), getattr(caps, f.name)
            if cap is not None:
                changes[f.name] = cap if mine is None else min(mine, cap)
        return replace(self, **changes)

    def or_defaults(self, defaults: Limits) -> Limits:
        return replace(
            self, **{f.name: getattr(defaults, f.name) for f in fields(self) if getattr(self, f.name) is None}
        )

    def describe(self) -> str:
        parts = [
            f"memory {show_size(self.memory)}" if self.memory else "",
            f"{self.processes} processes" if self.processes else "",
            f"CPU time {show_duration(self.cpu_time)}" if self.cpu_time else "",
            f"disk {show_size(self.disk)}" if self.disk else "",
            f"wall time {show_duration(self.wall_time)}" if self.wall_time else "",
        ]
        return ", ".join(p for p in parts if p) or "none"

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Limits:
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})


_PARSERS: dict[str, Callable[[Any, str], Any]] = {
    "memory": parse_size,
    "processes": parse_count,
    "cpu_time": parse_duration,
    "disk": parse_size,
    "wall_time": parse_duration,
}

# Enough for a data loader's workers and their threads; a fork bomb stops here.
DEFAULT_LIMITS = Limits(processes=4096)


@dataclass(frozen=True)
class SandboxSpec:
    """The repo config's `launch.sandbox`: a mode, or a mapping of mode, network and limits."""

    mode: Mode = Mode.AUTO
    network: Network = Network.ON
    limits: Limits = Limits()

    @classmethod
    def parse(cls, value: Any, where: str = CONFIG_KEY) -> SandboxSpec:
        if isinstance(value, SandboxSpec):
            return value
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            return cls(mode=_mode(value, where))
        settings = dict(value)
        mode = _mode(settings.pop("mode", Mode.AUTO.value), f"{where}.mode")
        network = Network.ON
        if "network" in settings:
            network = Network.ON if _on_off(settings.pop("network"), f"{where}.network") else Network.OFF
        return cls(mode=mode, network=network, limits=Limits.parse(settings, where))


def _mode(value: Any, key: str) -> Mode:
    if isinstance(value, bool):
        return Mode.ON if value else Mode.OFF
    try:
        return Mode(value)
    except ValueError:
        raise BadInput(f"'{key}' must be auto, on or off, got {value!r}") from None


@dataclass(frozen=True)
class SandboxPolicy:
    """How one repository's code runs on this host: sandboxed or not, and with what."""

    enabled: bool
    network: Network = Network.ON
    limits: Limits = DEFAULT_LIMITS
    read_only: tuple[str, ...] = ()  # host folders the operator lets jobs read
    env: tuple[str, ...] = ()  # the bot's variables the operator passes on
    hidden: tuple[str, ...] = ()  # never shown, whatever else is (the App's key file)
    unsandboxed_ok: bool = False  # the operator's opt-out when the tool is missing


class SandboxContext(Protocol):
    """What the sandbox reads of the bot's settings (bot.core.settings.Settings has it)."""

    @property
    def sandbox(self) -> SandboxSettings: ...
    @property
    def state_dir(self) -> Path: ...


def required(settings: SandboxContext) -> bool:
    """True when `off` is refused: the operator says so, or by default under `serve`."""
    sandbox = settings.sandbox
    return sandbox.required if sandbox.required is not None else sandbox.auto


def operator_caps(settings: SandboxContext) -> Limits:
    return Limits.from_text(settings.sandbox.limits, LIMITS_VARIABLE)


def policy_for(value: Any, settings: SandboxContext) -> SandboxPolicy:
    """The decision for a repo config's `launch.sandbox` value under `settings`.

    `--sandbox`/`--no-sandbox` win over the repo config; `auto` is on under `serve`. Turning it
    off where it is required (by the operator, or under `serve` unless the operator made it
    optional: a branch's own config must not switch off what protects the server) is BadInput.
    """
    spec = SandboxSpec.parse(value)
    chosen = settings.sandbox.choice
    wanted = chosen if chosen is not None else {Mode.ON: True, Mode.OFF: False, Mode.AUTO: None}[spec.mode]
    if wanted is False and required(settings):
        source = "--no-sandbox" if chosen is False else f"{CONFIG_KEY}: off"
        raise BadInput(
            f"{source} is not allowed here: this bot runs repository code only in its sandbox "
            f"(the operator can allow it with {REQUIRED_VARIABLE}=optional)"
        )
    enabled = wanted if wanted is not None else (settings.sandbox.auto or required(settings))
    sandbox = settings.sandbox
    return SandboxPolicy(
        enabled=enabled,
        network=spec.network,
        limits=spec.limits.capped(operator_caps(settings)).or_defaults(DEFAULT_LIMITS),
        read_only=sandbox.paths,
        env=sandbox.env,
        hidden=(*sandbox.hidden, str(settings.state_dir)),
        unsandboxed_ok=sandbox.unsandboxed_ok,
    )
