"""The local job's own environment: what the repo declares, installed where only its runs see it.

With `launch.setup` unset (and `launch.install` left on), a local run first installs what the
repository declares — `requirements.txt`, else `pyproject.toml`'s `[project] dependencies` —
into a virtual environment of the worktree's own, under the bot's state folder, layered on the
job's interpreter:

- the environment is made from the interpreter the job runs (`python`, `python3`, or the
  interpreter the command names), and a `.pth` file adds that interpreter's site folders
  (`site.addsitedir`, so their own `.pth` files work too) after its own: everything installed
  for the job stays importable, and pip installs only what is missing or pinned otherwise;
- nothing is ever installed into the bot's environment or the user's: pip runs with the new
  environment's `sys.prefix`, and leaves a package it would replace in the base where it is;
- the job then runs with the environment's `bin/` first on `PATH`, `VIRTUAL_ENV` set, and its
  site-packages first on `PYTHONPATH`, so `python train.py`, console scripts (`torchrun`) and an
  interpreter named by absolute path all see what was installed;
- installing runs once per version of the declared requirements: a digest of the files and the
  interpreter is kept beside the environment; a failed install is not retried for the same
  requirements (a machine without the network would pay pip's retries at every launch); the job
  then runs with what is installed, and says so in its log.

A `setup.py` is not run to learn its requirements (that runs the repo's code outside the job):
such a repo declares them in `requirements.txt`, or sets `launch.setup`.

The install itself runs inside the job (it is the repo's code: sdists build with it), as the
first lines of its script; the part that runs there is this module's `main`, executed as a
file by the job's interpreter, so it uses the standard library only.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path
from typing import Any

REQUIREMENTS = "requirements.txt"
PYPROJECT = "pyproject.toml"
HELPER = Path(__file__).resolve()
STAMP = "far-installed.json"
ACTIVATE = "far-env.sh"
_PYTHON = re.compile(r"^(?:.*/)?python(?:\d+(?:\.\d+)*)?$")
_PIP = ["--disable-pip-version-check", "--no-input", "-q", "--timeout", "15", "--retries", "1"]


# -- the bot's side: what to install, and the script lines that do it --------------------------


def declared(worktree: Path) -> tuple[list[str], list[str]]:
    """(requirement files, requirement strings) the repo declares: `requirements.txt` when it
    names at least one requirement, else `pyproject.toml`'s `[project] dependencies`."""
    requirements = worktree / REQUIREMENTS
    if requirements.is_file() and _names_a_requirement(requirements):
        return [REQUIREMENTS], []
    return [], _pyproject_dependencies(worktree / PYPROJECT)


def _names_a_requirement(path: Path) -> bool:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return False
    return any(line.strip() and not line.strip().startswith("#") for line in lines)


def _pyproject_dependencies(path: Path) -> list[str]:
    if not path.is_file() or importlib.util.find_spec("tomllib") is None:
        return []  # tomllib is new in 3.11: on 3.10 a pyproject-only repo declares requirements.txt
    # Imported by name, here: the job's interpreter runs this file too, and may be older.
    tomllib = importlib.import_module("tomllib")
    try:
        project = tomllib.loads(path.read_text(encoding="utf-8")).get("project") or {}
    except (OSError, ValueError):
        return []
    dependencies = project.get("dependencies") if isinstance(project, dict) else None
    return [d for d in dependencies or [] if isinstance(d, str) and d.strip()]


def env_dir(state_dir: Path, worktree: Path) -> Path:
    """The worktree's environment: one per worktree, under the bot's state folder."""
    key = hashlib.sha256(str(Path(worktree).resolve()).encode()).hexdigest()[:16]
    return Path(state_dir) / "envs" / key


def interpreter(command: str) -> str | None:
    """The interpreter a command names first (`python3 train.py`, `/opt/venv/bin/python -m x`),
    else the one it hands a launch script in a leading assignment (`PYTHON=/opt/venv/bin/python
    bash run.sh`); None when it names none (`torchrun`, `bash run.sh`)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    assigned = []
    while words and re.match(r"^[A-Za-z_]\w*=", words[0]):  # leading VAR=value
        assigned.append(words.pop(0).split("=", 1)[1])
    if words and _PYTHON.match(words[0]):
        return words[0]
    return next((value for value in assigned if _PYTHON.match(value)), None)


def install_lines(worktree: Path, command: str, state_dir: Path) -> str | None:
    """Shell lines that make (or reuse) the worktree's environment and enter it, to run before
    the command; None when the repo declares nothing to install."""
    files, dependencies = declared(Path(worktree))
    if not files and not dependencies:
        return None
    target = env_dir(state_dir, worktree)
    python = interpreter(command)
    finder = f"command -v {shlex.quote(python)}" if python else "command -v python3 || command -v python"
    args = [str(target), *(f"--requirement={f}" for f in files), *(f"--dependency={d}" for d in dependencies)]
    helper = " ".join(shlex.quote(a) for a in (str(HELPER), *args))
    activate = shlex.quote(str(target / ACTIVATE))
    return (
        f"__far_python=$({finder})\n"
        'if [ -n "$__far_python" ]; then\n'
        f'  "$__far_python" -E {helper} || echo "fix-and-relaunch: installing what the repo declares failed;'
        ' the job runs with what is installed" >&2\n'
        "fi\n"
        f"if [ -f {activate} ]; then . {activate}; fi\n"
    )


# -- the job's side: run by the job's interpreter, standard library only ----------------------


def main(argv: list[str]) -> int:
    target = Path(argv[0])
    files = [a.split("=", 1)[1] for a in argv[1:] if a.startswith("--requirement=")]
    dependencies = [a.split("=", 1)[1] for a in argv[1:] if a.startswith("--dependency=")]
    digest = _digest(files, dependencies)
    stamp = _read_json(target / STAMP)
    if stamp.get("digest") == digest and (target / ACTIVATE).is_file():
        return 0 if stamp.get("ok") else 1  # these requirements were tried already
    if stamp.get("python") not in (None, _python_id()):
        shutil.rmtree(target, ignore_errors=True)  # made from another interpreter
    python = _make(target)
    print(f"fix-and-relaunch: installing {', '.join(files + dependencies)} into {target}", file=sys.stderr, flush=True)
    pip = [str(python), "-m", "pip", "install", *_PIP]
    for name in files:
        pip += ["-r", name]
    ok = subprocess.call(pip + dependencies) == 0
    (target / STAMP).write_text(json.dumps({"digest": digest, "ok": ok, "python": _python_id()}))
    return 0 if ok else 1


def _python_id() -> str:
    return f"{os.path.realpath(sys.executable)} {sys.version_info[0]}.{sys.version_info[1]}"


def _digest(files: list[str], dependencies: list[str]) -> str:
    hasher = hashlib.sha256(_python_id().encode())
    for name in files:
        hasher.update(name.encode() + b"\0" + Path(name).read_bytes() + b"\0")
    for dependency in dependencies:
        hasher.update(dependency.encode() + b"\0")
    return hasher.hexdigest()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _make(target: Path) -> Path:
    """The environment (made once), layered on this interpreter's site folders; its python."""
    has_pip = _importable("pip")
    venv.EnvBuilder(with_pip=not has_pip, symlinks=os.name != "nt").create(target)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(target), "platbase": str(target)}))
    purelib.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"import site; site.addsitedir({folder!r})\n" for folder in _site_folders())
    (purelib / "far-base-site.pth").write_text(lines)
    (target / ACTIVATE).write_text(_activate(target, purelib))
    bindir = "Scripts" if os.name == "nt" else "bin"
    return target / bindir / ("python.exe" if os.name == "nt" else "python")


def _importable(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _site_folders() -> list[str]:
    """This interpreter's site folders, in its own order (a venv's, else the system's and user's)."""
    folders = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        folders.append(site.getusersitepackages())
    return [f for f in folders if os.path.isdir(f)]


def _activate(target: Path, purelib: Path) -> str:
    bindir = target / ("Scripts" if os.name == "nt" else "bin")
    return (
        f"export VIRTUAL_ENV={shlex.quote(str(target))}\n"
        f'export PATH={shlex.quote(str(bindir))}:"$PATH"\n'
        f'export PYTHONPATH={shlex.quote(str(purelib))}${{PYTHONPATH:+:"$PYTHONPATH"}}\n'
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
