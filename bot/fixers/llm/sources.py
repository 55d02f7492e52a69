"""Follow a failure to the lines that set it up, which are often in no traceback frame.

The names in the failure (the diagnosed config key, quoted names and flags in the exception,
the hyperparameter a divergence implicates, a missing path) are looked up in the repository's
text files: assignments and dataclass fields, `add_argument` calls, YAML keys, flags in launch
scripts. A name the code reads but nothing declares is matched to its neighbours (`ent_coef`
for `ent_coef_final`, `batch_size` for `batchsize`), and the end of the `add_argument` block
of an argparse file is shown, since that is where a missing argument goes. Beside those come
the launch command, the scripts it runs and the config files the run read (a `-c` file, a
Hydra primary config and its `experiment=` file). Each site is scored; the best go into the
prompt within a character budget.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from bot.fixers.model import FixContext

TEXT_SUFFIXES = (".py", ".sh", ".bash", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".json", ".txt")
MAX_SOURCE_FILE_BYTES = 512 * 1024
MAX_FILES = 2_000
SITE_CONTEXT = 4  # lines either side of a site
WHOLE_FILE_CHARS = 3_000  # a launch script or a run's config file this small is shown whole
PARSER_TAIL_LINES = 8  # lines after the last add_argument: where a new one goes
LR_NAMES = ("lr", "learning_rate", "learning-rate", "base_lr", "max_lr", "optimizer.lr")

_QUOTED = re.compile(r"""['"`]([A-Za-z_][\w.-]{1,60})['"`]""")
_FLAG = re.compile(r"(?<![\w-])--?([A-Za-z][\w-]{1,60})")
_OVERRIDE = re.compile(r"(?<![\w/.-])\+{0,2}([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)+)=")
_ATTRIBUTE = re.compile(r"has no attribute '(\w+)'")
_MISSING_KEY = re.compile(r"Key '([\w.-]+)'")
_PATH_IN_MESSAGE = re.compile(r"""['"]([^'"\s]*[/.][^'"\s]*)['"]""")
# Declarations: (kind, regex capturing the declared name)
_DECLARATIONS = (
    ("argument", re.compile(r"add_argument\(\s*(?:['\"]-[\w-]*['\"]\s*,\s*)?['\"]-{1,2}([\w-]+)['\"]")),
    ("field", re.compile(r"^\s*([A-Za-z_]\w*)\s*:\s*[\w.\[\], |\"']+=")),
    ("assignment", re.compile(r"^\s*([A-Za-z_]\w*)\s*=(?!=)")),
    ("definition", re.compile(r"^\s*(?:def|class)\s+([A-Za-z_]\w*)")),
    ("key", re.compile(r"^\s*([A-Za-z_][\w-]*)\s*:(?:\s|$)")),
    ("dict key", re.compile(r"""^\s*['"]([A-Za-z_][\w.-]*)['"]\s*:""")),
)
_ADD_ARGUMENT = re.compile(r"\badd_argument\(")
_HYDRA_MAIN = re.compile(
    r"""hydra\.main\([^)]*config_path\s*=\s*['"]([^'"]+)['"][^)]*config_name\s*=\s*['"]([^'"]+)['"]"""
)
_SCRIPT_WORD = re.compile(r"[\w./-]+\.(?:py|sh|bash|ya?ml|toml|cfg|json)$")


@dataclass(frozen=True)
class Site:
    """Lines lo..hi of `path` worth showing, and why."""

    path: str
    lo: int
    hi: int
    score: float
    why: str


@dataclass
class Excerpt:
    path: str
    lo: int
    hi: int
    text: str
    why: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.path}, lines {self.lo}-{self.hi} (exact text): {'; '.join(self.why)}"


# -- what the failure names ----------------------------------------------------------------


def failure_names(ctx: FixContext) -> list[str]:
    """The names to look up, the most telling first."""
    d = ctx.diagnosis
    names: list[str] = []
    if d.config_key:
        names += [d.config_key.name, *(n for n in (d.config_key.flag, d.config_key.suggestion) if n)]
    message = " ".join(str(v) for v in ((d.exception or {}).get("message"), d.summary) if v)
    names += _ATTRIBUTE.findall(message) + _MISSING_KEY.findall(message)
    names += _FLAG.findall(message) + _OVERRIDE.findall(message) + _QUOTED.findall(message)
    if d.category == "nan_loss":
        names += list(LR_NAMES)
    cleaned: list[str] = []
    for name in names:
        name = name.strip().lstrip("-+")
        if len(name) >= 2 and name not in cleaned and not name.isdigit():
            cleaned.append(name)
    return cleaned[:12]


def failure_paths(ctx: FixContext) -> list[str]:
    """Paths the failure names (a missing file), as they were written."""
    message = str((ctx.diagnosis.exception or {}).get("message") or "")
    return [p for p in _PATH_IN_MESSAGE.findall(message) if len(p) > 2][:3]


def variants(name: str) -> set[str]:
    """How the same name is spelled across argparse, Python and YAML."""
    last = name.rsplit(".", 1)[-1]
    out = {name, last}
    for n in (name, last):
        out |= {n.replace("-", "_"), n.replace("_", "-")}
    return {v for v in out if v}


def squash(name: str) -> str:
    return re.sub(r"[-_.]", "", name.lower())


def relation(declared: str, wanted: str) -> tuple[float, str] | None:
    """How a declared name relates to a looked-for one: (score, why), or None."""
    if declared in variants(wanted):
        return 10.0, f"declares {wanted}"
    a, b = squash(declared), squash(wanted.rsplit(".", 1)[-1])
    if a == b:
        return 8.0, f"declares {declared}, spelled like {wanted}"
    short, long = sorted((a, b), key=len)
    if len(short) >= 4 and long.startswith(short) and len(long) - len(short) <= 8:
        return 5.0, f"declares {declared}, a neighbour of {wanted}"
    return None


# -- where the run came from -----------------------------------------------------------------


def launch_files(root: Path, command: str) -> list[str]:
    """Repo files the launch command names (scripts, -c config files), then those the scripts
    name, one level down."""
    found: list[str] = []
    for rel in _named_files(root, command, Path(".")):
        if rel not in found:
            found.append(rel)
        if rel.endswith((".sh", ".bash")):
            script = _read(root / rel)
            found += [r for r in _named_files(root, script, Path(rel).parent) if r not in found]
    return found


def hydra_configs(root: Path, files: list[str], command_text: str) -> list[str]:
    """The Hydra primary config of an entry script among `files`, and the `experiment=` (or
    any `group=option`) files the command picks from it."""
    out: list[str] = []
    for rel in files:
        if not rel.endswith(".py"):
            continue
        match = _HYDRA_MAIN.search(_read(root / rel))
        if not match:
            continue
        folder = (PurePosixPath(rel).parent / match[1]).as_posix()
        config_dir = _normal(folder)
        if config_dir is None:
            continue
        name = match[2] if match[2].endswith((".yaml", ".yml")) else f"{match[2]}.yaml"
        out.append(f"{config_dir}/{name}")
        for group, option in re.findall(r"(?<![\w.])([A-Za-z_]\w*)=([\w/-]+)(?=\s|$)", command_text):
            out.append(f"{config_dir}/{group}/{option}.yaml")
    return [p for p in out if (root / p).is_file()]


def _named_files(root: Path, text: str, base: Path) -> list[str]:
    try:
        words = shlex.split(text, comments=True)
    except ValueError:
        words = text.split()
    found = []
    for word in words:
        word = word.split("=", 1)[-1] if word.startswith("-") else word
        if not _SCRIPT_WORD.search(word) or word.startswith("/"):
            continue
        for candidate in (base / word, Path(word)):
            rel = _normal(candidate.as_posix())
            if rel and (root / rel).is_file() and rel not in found:
                found.append(rel)
                break
    return found


def _normal(rel: str) -> str | None:
    parts: list[str] = []
    for part in PurePosixPath(rel).parts:
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part not in (".", ""):
            parts.append(part)
    return "/".join(parts) or None


# -- scanning the repository -----------------------------------------------------------------


def text_files(root: Path, tracked: list[str]) -> list[str]:
    return [
        rel
        for rel in tracked[:MAX_FILES]
        if rel.endswith(TEXT_SUFFIXES)
        and not rel.startswith(".git/")
        and (root / rel).is_file()
        and not (root / rel).is_symlink()
        and (root / rel).stat().st_size <= MAX_SOURCE_FILE_BYTES
    ]


def declaration_sites(root: Path, files: list[str], names: list[str]) -> list[Site]:
    """Sites declaring a looked-for name or a neighbour of it, and mentions of the exact name."""
    sites: list[Site] = []
    wanted = [(rank, name) for rank, name in enumerate(names)]
    for rel in files:
        lines = _read(root / rel).splitlines()
        for number, line in enumerate(lines, 1):
            for kind, regex in _DECLARATIONS:
                for declared in regex.findall(line):
                    best = _best(declared, wanted)
                    if best:
                        score, why = best
                        sites.append(_around(rel, number, len(lines), score, f"{kind}: {why}"))
            for flag in _FLAG.findall(line) if rel.endswith((".sh", ".bash")) else []:
                best = _best(flag, wanted)
                if best:
                    sites.append(_around(rel, number, len(lines), best[0] - 1, f"flag in a script: {best[1]}"))
    return sites


def mention_sites(root: Path, files: list[str], needles: list[str]) -> list[Site]:
    """Lines that mention a path the failure names (its last part, as a script or config wrote it)."""
    parts = {PurePosixPath(n).name for n in needles if PurePosixPath(n).name}
    sites = []
    for rel in files:
        lines = _read(root / rel).splitlines()
        for number, line in enumerate(lines, 1):
            hit = next((p for p in parts if p in line), None)
            if hit:
                sites.append(_around(rel, number, len(lines), 4.0, f"mentions {hit}"))
    return sites


def parser_tail_sites(root: Path, files: list[str]) -> list[Site]:
    """The end of each file's add_argument block: where a missing argument is declared."""
    sites = []
    for rel in files:
        if not rel.endswith(".py"):
            continue
        lines = _read(root / rel).splitlines()
        last = max((n for n, line in enumerate(lines, 1) if _ADD_ARGUMENT.search(line)), default=0)
        if last:
            hi = min(len(lines), last + PARSER_TAIL_LINES)
            sites.append(Site(rel, max(1, last - 3), hi, 6.0, "the end of its add_argument calls"))
    return sites


def _best(declared: str, wanted: list[tuple[int, str]]) -> tuple[float, str] | None:
    found = [(r[0] - 0.2 * rank, r[1]) for rank, name in wanted if (r := relation(declared, name))]
    return max(found) if found else None


def _around(rel: str, number: int, total: int, score: float, why: str) -> Site:
    return Site(rel, max(1, number - SITE_CONTEXT), min(total, number + SITE_CONTEXT), score, why)


# -- choosing ---------------------------------------------------------------------------------


def choose(root: Path, sites: list[Site], budget_chars: int, shown: set[str]) -> list[Excerpt]:
    """The best sites as excerpts, overlapping ones merged, within `budget_chars`; files in
    `shown` (already in the prompt whole) are skipped."""
    chosen: list[Excerpt] = []
    used = 0
    for site in sorted(sites, key=lambda s: (-s.score, s.path, s.lo)):
        if site.path in shown:
            continue
        merged = next((e for e in chosen if e.path == site.path and site.lo <= e.hi + 1 and site.hi >= e.lo - 1), None)
        lo, hi = (min(site.lo, merged.lo), max(site.hi, merged.hi)) if merged else (site.lo, site.hi)
        text = "\n".join(_read(root / site.path).splitlines()[lo - 1 : hi])
        extra = len(text) - (len(merged.text) if merged else 0)
        if used + extra > budget_chars:
            continue
        used += extra
        if merged:
            merged.lo, merged.hi, merged.text = lo, hi, text
            if site.why not in merged.why:
                merged.why.append(site.why)
        else:
            chosen.append(Excerpt(site.path, lo, hi, text, [site.why]))
    return chosen


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_SOURCE_FILE_BYTES:
            return ""
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
