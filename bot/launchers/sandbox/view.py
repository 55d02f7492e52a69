"""What a sandboxed job sees: its folders, its devices and its environment.

Built from a list of what is allowed, never from the host less what is forbidden: the system
(/usr and its links), a short list of /etc files programs need, the folders on PATH and the
Python installations of the interpreters the command names, the worktree (read-write) and its
git metadata (read-only), the operator's read-only folders, GPUs, and a private /tmp. A folder
holding anything the bot keeps to itself (its state, its home, the App's key) is never shown.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bot.launchers.base import BOT_SECRET_VARS
from bot.launchers.sandbox.policy import Network

SANDBOX_ID = "65534"  # nobody: every /etc/passwd has it, so getpwuid() finds the job's user
HOME = "/tmp/home"  # on the private /tmp
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What programs read from /etc: users and groups (no shadow), name resolution, TLS roots, the
# loader's cache, time zone, alternatives. Missing ones are skipped.
ETC = (
    "passwd",
    "group",
    "hosts",
    "host.conf",
    "resolv.conf",
    "nsswitch.conf",
    "gai.conf",
    "services",
    "protocols",
    "localtime",
    "timezone",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "pki",
    "crypto-policies",
    "mime.types",
    "os-release",
    "debian_version",
    "lsb-release",
    "fonts",
    "OpenCL",
    "vulkan",
    "nvidia",
)
DEVICES = ("/dev/nvidia*", "/dev/nvidia-caps", "/dev/dri", "/dev/kfd")
# Variables that describe the machine, not the bot: locale, TLS roots, proxies.
KEPT_VARS = (
    "PATH",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TERM",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "PYTHONUNBUFFERED",
)
KEPT_PREFIXES = ("LC_", "WANDB_")  # the locale, and W&B's settings for the run
RUN_VARS = ("FIX_AND_RELAUNCH_RUN_ID", "FIX_AND_RELAUNCH_BRANCH", "FIX_AND_RELAUNCH_COMMIT", "FIX_AND_RELAUNCH_REPO")
_EXECUTABLE_PATH = re.compile(r"(?<![\w.~$/-])(/[\w.+@%/-]+)")


class ExposesHidden(ValueError):
    """A folder the job would see holds something the bot keeps to itself."""


def environment(env: Mapping[str, str], keep: Iterable[str] = ()) -> dict[str, str]:
    """The job's environment: the machine's locale, TLS and proxy settings, W&B's settings, the
    run's own variables and those named in `keep`; HOME on the private /tmp. Never the bot's
    secrets, whatever `keep` says."""
    wanted = set(KEPT_VARS) | set(RUN_VARS) | set(keep)
    clean = {
        name: value
        for name, value in env.items()
        if (name in wanted or name.startswith(KEPT_PREFIXES)) and name not in BOT_SECRET_VARS
    }
    clean["HOME"] = HOME
    clean.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    return clean


def _real(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


def _within(path: Path, folder: Path) -> bool:
    """`path` is `folder` or under it (both resolved); pathlib's is_relative_to, without its cost."""
    inner, outer = str(path), str(folder).rstrip("/")
    return inner == outer or inner.startswith(outer + "/") or outer == ""


def _python_prefix(directory: Path) -> Path | None:
    """The installation a bin folder belongs to, when it is a Python's (lib/pythonX.Y)."""
    parent = directory.parent
    if directory.name == "bin" and any(parent.glob("lib/python3*")):
        return parent
    return None


def _venv_home(venv: Path) -> Path | None:
    try:
        lines = (venv / "pyvenv.cfg").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() == "home" and value.strip():
            return _python_prefix(Path(value.strip())) or Path(value.strip())
    return None


def toolchain(path_var: str, script: str) -> list[Path]:
    """Folders to show read-only for the job's programs: each folder on PATH (the bot's own, not
    the repository's choice), and the Python installation and virtual environment of each
    interpreter there or named by absolute path in `script` (a named file that is not a Python
    interpreter shows nothing: naming /root/.ssh/id_rsa must not show /root/.ssh)."""
    bins = [Path(p) for p in path_var.split(":") if p.startswith("/")]
    named = [Path(p) for p in _EXECUTABLE_PATH.findall(script)]
    found: list[Path] = [b for b in bins if b.is_dir()]
    found += [root for b in found if (root := _version_manager_root(b)) is not None]
    for program in [*named, *(b / "python" for b in bins), *(b / "python3" for b in bins)]:
        found += _python_installation(program)
    return found


def _version_manager_root(folder: Path) -> Path | None:
    """The root of a version manager whose shims are on PATH (pyenv, rbenv: libexec/; asdf:
    installs/): its shims exec the manager, which must be seen too, or `python` fails."""
    if folder.name != "shims":
        return None
    root = folder.parent
    if root == Path.home() or not any((root / marker).is_dir() for marker in ("libexec", "installs")):
        return None
    return root


def _python_installation(program: Path) -> list[Path]:
    """A Python interpreter's virtual environment and installation (through links); [] for
    anything else."""
    if not program.name.startswith("python") or not program.is_file():
        return []
    found: list[Path] = []
    venv = program.parent.parent
    if (venv / "pyvenv.cfg").is_file():
        found.append(venv)
        if (home := _venv_home(venv)) is not None:
            found.append(home)
    real = program.resolve()
    if (prefix := _python_prefix(real.parent)) is not None:
        found.append(prefix)
    return found


def git_metadata(worktree: Path) -> list[Path]:
    """A linked worktree's git folders (its own and the repository's), so git and W&B can read
    the commit; they are shown read-only."""
    dotgit = worktree / ".git"
    if not dotgit.is_file():
        return []  # a plain checkout keeps them inside the worktree
    text = dotgit.read_text(errors="replace").strip()
    if not text.startswith("gitdir:"):
        return []
    gitdir = (worktree / text.removeprefix("gitdir:").strip()).resolve()
    common = gitdir
    commondir = gitdir / "commondir"
    if commondir.is_file():
        common = (gitdir / commondir.read_text().strip()).resolve()
    return [common] if gitdir.is_relative_to(common) else [common, gitdir]


@dataclass
class View:
    """The folders of one job's sandbox."""

    worktree: Path
    read_only: list[Path] = field(default_factory=list)
    writable: list[Path] = field(default_factory=list)
    hidden: list[Path] = field(default_factory=list)

    def check(self) -> None:
        """ExposesHidden when a shown folder is, or holds, a hidden path."""
        for shown in [self.worktree, *self.writable, *self.read_only]:
            for secret in self.hidden:
                if _within(secret, shown):
                    raise ExposesHidden(f"{shown} holds {secret}, which a job must never see")

    def _read_only(self) -> list[Path]:
        """Existing folders, none under the system folders already shown, no duplicates."""
        system = [Path(p) for p in SYSTEM]
        kept: dict[Path, None] = {}
        for path in self.read_only:
            if path.exists() and not any(_within(path, s) for s in system):
                kept.setdefault(path)
        # A writable folder wins over a read-only one above it: bind the read-only ones first.
        return sorted(kept, key=lambda p: len(p.parts))

    def bwrap_args(self, *, network: Network, disable_userns: bool, tmp_size: int | None) -> list[str]:
        self.check()
        args = [
            "--unshare-all",
            "--unshare-user",
            "--die-with-parent",
            "--uid",
            SANDBOX_ID,
            "--gid",
            SANDBOX_ID,
            "--cap-drop",
            "ALL",
        ]
        if network == Network.ON:
            args.append("--share-net")
        if disable_userns:
            args.append("--disable-userns")
        args += ["--hostname", "sandbox"]
        args += _system_args()
        args += ["--proc", "/proc", "--dev", "/dev"]
        for pattern in DEVICES:
            for device in sorted(glob.glob(pattern)):
                args += ["--dev-bind-try", device, device]
        args += ["--ro-bind-try", "/sys", "/sys"]
        args += [*(["--size", str(tmp_size)] if tmp_size else []), "--tmpfs", "/tmp", "--dir", HOME]
        for path in self._read_only():
            args += ["--ro-bind", str(path), str(path)]
        for path in [self.worktree, *self.writable]:
            args += ["--bind", str(path), str(path)]
        return [*args, "--chdir", str(self.worktree)]


def _system_args() -> list[str]:
    args: list[str] = []
    for root in SYSTEM:
        path = Path(root)
        if path.is_symlink():
            args += ["--symlink", str(path.readlink()), root]
        elif path.is_dir():
            args += ["--ro-bind", root, root]
    for name in ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return args


def build_view(
    *,
    worktree: Path,
    env: Mapping[str, str],
    script: str,
    read_only: Iterable[str | Path] = (),
    writable: Iterable[str | Path] = (),
    hidden: Iterable[str | Path] = (),
) -> View:
    """The view for a job in `worktree` running `script` with `env` (see the module's docstring).
    A PATH folder that would show a hidden path is left out; a worktree or a folder a caller or
    the operator asked for that would is refused (ExposesHidden, when the view is used)."""
    secret = [_real(p) for p in hidden] + [Path.home().resolve()]
    found = [_real(p) for p in [*toolchain(env.get("PATH", ""), script), *git_metadata(_real(worktree))]]
    found = [p for p in found if not any(_within(s, p) for s in secret)]
    return View(
        _real(worktree),
        read_only=[*found, *(_real(p) for p in read_only)],
        writable=[_real(p) for p in writable],
        hidden=secret,
    )
