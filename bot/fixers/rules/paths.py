"""A data file is missing → the closest existing path, written into the literal that named it
(`data/trian.csv` → `data/train.csv`); so is a script or folder a launch script names
(`python trian.py`: "can't open file"; `cd time_sequence_predicton`: "cd: …: No such file").

Paths resolve from the folder the job runs in (`cd runs && python ../train.py -i names.txt`
reads `runs/names.txt`), except an absolute one and the folder of a `cd` that failed (from the
repo's root, where a launch script starts); a path joined from a config value
(`os.path.join(root, name)`) is fixed in whichever part is wrong, the root or the name; a bare
`assert os.path.exists(path)` names no path, so the path is the config value the failing call
passed.
"""

from __future__ import annotations

import difflib
import itertools
import re
from pathlib import Path, PurePath

from bot.fixers.asserted_path import asserted_path_site
from bot.fixers.invocations import COMMAND, invocations
from bot.fixers.model import FixContext, FixProposal
from bot.fixers.text import failing_file, failure_texts, line_edit, read_text, repo_files
from bot.fixers.value_source import config_files_used

CUTOFF = 0.8
_MAX_SIBLINGS = 20_000
_TEXT_FILES = (".py", ".yaml", ".yml", ".json", ".toml", ".cfg", ".ini", ".sh")
_ASSIGNED = re.compile(r"""^\s*(?:--)?["']?([\w.-]+)["']?\s*[:=]""")  # `key = `, `key: `, `"key": `, `--key=`
_DATA_KEY = re.compile(r"(?i)data|path|dir|root|file|folder|split|subset|corpus|source")
_CD_FAILED = re.compile(r"\bcd: ([^:\n]+): No such file or directory")  # a shell's `cd`
_MISSING = (
    re.compile(r"No such file or directory: ['\"]([^'\"]+)['\"]"),
    re.compile(r"[Ff]ile ['\"]?([^\s'\"]+)['\"]? (?:does not exist|not found)"),
    re.compile(r"(?:does not exist|not found): ['\"]?([^\s'\"]+)['\"]?"),
    re.compile(r"can't open file ['\"]([^'\"]+)['\"]: \[Errno 2\]"),  # python naming a script
    _CD_FAILED,
)


def closest_path(ctx: FixContext) -> FixProposal | None:
    found = _missing_path(ctx)
    if found is None:
        return _asserted(ctx)
    missing, message = found
    from_root = PurePath(missing).is_absolute() or _CD_FAILED.search(message) is not None
    cwd = "" if from_root else _job_folder(ctx)
    rel = _relative(ctx.worktree / cwd, missing) if cwd else _relative(ctx.worktree, missing)
    if not rel:
        return None
    fixed = _closest_existing(ctx.worktree / cwd, rel) if cwd else _closest_existing(ctx.worktree, rel)
    if fixed is None and cwd:
        fixed = _from_repo_root(ctx.worktree, cwd, rel)
    if fixed is None:
        return None
    site = _literal_site(ctx, missing, rel, fixed)
    if site is None:
        return None
    path, text, changes = site
    return FixProposal(
        fixer="rule:closest-path",
        description=f"read {'/'.join(fixed)} instead of the missing {'/'.join(rel)} in {path}",
        root_cause=f"The run opens {'/'.join(rel)}, which does not exist; {'/'.join(fixed)} is the closest path that does.",
        edits=line_edit(path, text, changes),
        evidence=[message] + [f"{path}:{n}: {text.split(chr(10))[n - 1].strip()}" for n in sorted(changes)],
    )


def _asserted(ctx: FixContext) -> FixProposal | None:
    """`assert os.path.exists(root)` with no message: the config value the call passed."""
    found = asserted_path_site(ctx)
    if found is None:
        return None
    site, message = found
    cwd = _job_folder(ctx)
    parts = [p for p in PurePath(site.text.strip("'\"")).parts if p not in (".", "/")]
    fixed = _closest_existing(ctx.worktree / cwd, parts) if parts and ".." not in parts else None
    text = read_text(ctx.worktree, site.path)
    if fixed is None or text is None:
        return None
    new = "/".join(fixed)
    quote = site.text[0] if site.text[:1] in ("'", '"') else ""
    return FixProposal(
        fixer="rule:closest-path",
        description=f"read {new} instead of the missing {site.text} in {site.path}",
        root_cause=f"The run checks that {site.key}={site.text} exists, and it does not; {new} is the closest path that does.",
        edits=line_edit(site.path, text, {site.line: site.with_value(f"{quote}{new}{quote}")}),
        evidence=[message, f"{site.path}:{site.line}: {site.line_text.strip()}"],
    )


def _job_folder(ctx: FixContext) -> str:
    """The folder the job runs in, relative to the worktree, when the launch says ("" otherwise)."""
    folders = {inv.cwd for inv in invocations(ctx.worktree, ctx.config)}
    return folders.pop() if len(folders) == 1 else ""


def _from_repo_root(root: Path, cwd: str, parts: list[str]) -> list[str] | None:
    """A path the job reads from its folder that exists (or is close) from the repo root: the
    job changed folder and the path did not follow, so it goes up as many levels."""
    from_root = parts if (Path(root).joinpath(*parts)).exists() else _closest_existing(root, parts)
    if from_root is None:
        return None
    return [".."] * len(PurePath(cwd).parts) + from_root


def _missing_path(ctx: FixContext) -> tuple[str, str] | None:
    # A W&B artifact's name is left out: the repo's files cannot tell which ones exist. A failed
    # `cd` comes first: what the script could not find after it follows from it.
    texts = [text for text in failure_texts(ctx.diagnosis) if "artifact" not in text.lower()]
    for text in sorted(texts, key=lambda text: _CD_FAILED.search(text) is None):
        for pattern in _MISSING:
            match = pattern.search(text)
            if match:
                return match.group(1), text.strip()
    return None


def _relative(root: Path, missing: str) -> list[str] | None:
    """The missing path's parts relative to the worktree (a traceback may carry the job's
    absolute path: its longest tail whose first part exists in the worktree is taken)."""
    parts = [p for p in PurePath(missing).parts if p not in (".", "/")]
    if ".." in parts:
        return None  # outside the worktree, or too clever to rewrite safely
    if not PurePath(missing).is_absolute():
        return parts or None
    for start in range(len(parts) - 1):
        if (Path(root) / parts[start]).exists():
            return parts[start:]
    # The wrong part may be the first one in the worktree (`/job/dat/train.csv` for `data/`).
    for start in range(len(parts) - 1):
        if difflib.get_close_matches(parts[start], _siblings(Path(root)), n=1, cutoff=CUTOFF):
            return parts[start:]
    return None


def _closest_existing(root: Path, parts: list[str]) -> list[str] | None:
    """The parts with each absent one replaced by its closest sibling; None if one has none
    or nothing was absent."""
    folder, fixed = Path(root), []
    for part in parts:
        if not (folder / part).exists():
            close = difflib.get_close_matches(part, _siblings(folder), n=1, cutoff=CUTOFF)
            if not close:
                return None
            part = close[0]
        fixed.append(part)
        folder = folder / part
    return fixed if fixed != parts and folder.exists() else None


def _siblings(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    names = (p.name for p in folder.iterdir() if not p.name.startswith("."))
    return sorted(itertools.islice(names, _MAX_SIBLINGS))  # a data folder may hold millions


def _literal_site(
    ctx: FixContext, missing: str, rel: list[str], fixed: list[str]
) -> tuple[str, str, dict[int, str]] | None:
    """(file, its text, the lines changed: number → new line) where a string in the repo names
    the wrong part of the missing path: the whole path, a tail of it (code joining a folder and a
    file name), a head (the root a name was joined to) or a middle (a dataset name joined between
    a root and a file: `os.path.join('data', dataset, 'train.bin')`, changed only where it names
    data), the traceback's file first."""
    tails = [missing] + ["/".join(rel[i:]) for i in range(len(rel))]
    heads = ["/".join(rel[:i]) for i in range(len(rel) - 1, 0, -1)]
    middles = ["/".join(rel[i:j]) for i in range(1, len(rel) - 1) for j in range(len(rel) - 1, i, -1)]
    # Where the launch sets values first (its scripts, the config files it names): they beat
    # the defaults in the code; then the traceback's file, then the rest.
    launch = [w.path for inv in invocations(ctx.worktree, ctx.config) for w in inv.args if w.path != COMMAND]
    first = [*launch, *config_files_used(ctx.worktree, ctx.config), failing_file(ctx)]
    files = [f for f in dict.fromkeys(first) if f] + [
        f for f in repo_files(ctx.worktree, _TEXT_FILES, skip_tests=True) if f not in first
    ]
    texts: dict[str, str | None] = {}  # each file read once, when first needed
    candidates = [(t, _rewrite_tail) for t in dict.fromkeys(tails)] + [(h, _rewrite_head) for h in heads]
    candidates += [(m, _rewrite_middle) for m in middles]
    for part, rewrite in candidates:
        for variant in (part, f"./{part}") if rewrite is not _rewrite_middle else (part,):
            new = rewrite(variant, rel, fixed)
            if new is None:
                continue
            for rel_file in files:
                if rel_file not in texts:
                    texts[rel_file] = read_text(ctx.worktree, rel_file)
                text = texts[rel_file]
                if not text or not _quoted_pattern(variant, shell=rel_file.endswith(".sh")).search(text):
                    continue
                changes = _replace_quoted(text, variant, new, shell=rel_file.endswith(".sh"))
                if rewrite is _rewrite_middle:  # a bare name: not wherever the same word stands
                    lines = text.split("\n")
                    changes = {n: line for n, line in changes.items() if _names_data(lines[n - 1], variant)}
                if changes:
                    return rel_file, text, changes
    return None


def _quoted_pattern(literal: str, *, shell: bool = False) -> re.Pattern:
    # In quotes (Python, JSON, YAML) or a bare YAML/INI value after `:` or `=`; in a shell
    # script also a bare word (`-i data/names.txt`).
    escaped = re.escape(literal)
    bare = r"(?<=[\s:=])" if shell else r"(?<=[:=] )"
    end = r"(?=[\s;&|#]|$)" if shell else r"(?=\s*(?:#|$))"
    return re.compile(rf"""(['"]){escaped}\1|{bare}{escaped}{end}""", re.M)


def _rewrite_tail(literal: str, rel: list[str], fixed: list[str]) -> str | None:
    """The literal with its trailing path parts replaced by the fixed ones."""
    segments = literal.split("/")
    k = min(len(segments), len(rel))
    if segments[-k:] != rel[-k:]:
        return None
    if len(fixed) != len(rel):  # the job's folder moved the path up: only the whole path says so
        return "/".join(segments[:-k] + fixed) if k == len(rel) else None
    if fixed[-k:] == rel[-k:] or fixed[:-k] != rel[:-k]:
        return None  # the wrong part is not in this literal (e.g. a folder from another setting)
    return "/".join(segments[:-k] + fixed[-k:])


def _rewrite_head(literal: str, rel: list[str], fixed: list[str]) -> str | None:
    """The literal (a root folder some name is joined to) with its parts replaced by the fixed ones."""
    segments = [s for s in literal.split("/") if s not in ("", ".")]
    k = len(segments)
    if len(fixed) != len(rel) or segments != rel[:k] or fixed[k:] != rel[k:] or fixed[:k] == rel[:k]:
        return None
    return literal.replace("/".join(rel[:k]), "/".join(fixed[:k]), 1)


def _rewrite_middle(literal: str, rel: list[str], fixed: list[str]) -> str | None:
    """The literal (parts of the path between its first and its last) with its parts replaced by
    the fixed ones, when only those parts are wrong."""
    segments = literal.split("/")
    k = len(segments)
    if len(fixed) != len(rel):
        return None
    for i in range(1, len(rel) - k):
        if rel[i : i + k] == segments and fixed[:i] == rel[:i] and fixed[i + k :] == rel[i + k :]:
            return "/".join(fixed[i : i + k]) if fixed[i : i + k] != segments else None
    return None


def _names_data(line: str, literal: str) -> bool:
    """Whether the line uses `literal` as data (a dataset name joined into a path) rather than as
    some other setting that happens to hold the same word (`wandb_project = 'shakespeare-char'`):
    its key, when it assigns one, names data, a path or a folder."""
    key = _ASSIGNED.match(line[: line.find(literal)])
    return key is None or bool(_DATA_KEY.search(key.group(1)))


def _replace_quoted(text: str, literal: str, new: str, *, shell: bool = False) -> dict[int, str]:
    changes = {}
    pattern = _quoted_pattern(literal, shell=shell)
    for number, line in enumerate(text.split("\n"), 1):
        if pattern.search(line):
            changes[number] = pattern.sub(lambda m: m.group(0).replace(literal, new), line)
    return changes
