"""What a site held on the base branch: the same file read at the base with git, its sites found
by the same finders; for a flag the branch added, the default the base's program declares. A
rule uses it to tell a value the branch changed from one it inherited."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from bot.fixers.config_sites import Site, text_sites
from bot.fixers.invocations import invocations, text_invocations
from bot.fixers.llm.prompt import git_output
from bot.fixers.overrides import launch_views, view
from bot.fixers.text import read_text


def base_text(root: Path, base: str | None, rel: str) -> tuple[str, str] | None:
    """(ref, text) of `rel` on the base branch, local branch first, then the remote's; None when
    there is no base branch or the file is not there."""
    return next(base_texts(root, base, rel), None)


def base_texts(root: Path, base: str | None, rel: str) -> Iterator[tuple[str, str]]:
    """(ref, text) of `rel` on the local base branch, then on the remote's, where it is there:
    a local base branch may be older than the remote's."""
    if not base:
        return
    for ref in (base, f"origin/{base}"):
        text = git_output(root, "show", f"{ref}:{rel}")
        if text is not None:
            yield ref, text


def base_site(root: Path, config: dict, base: str | None, site: Site) -> tuple[str, Site] | None:
    """(ref, site) of the same place on the base branch, or None when it cannot be told.

    The same place is the same key, of the same kind, at the same rank among that key's sites
    of that kind in the file: line numbers shift when a branch adds lines elsewhere. When the
    branch added or removed such a site, ranks no longer line up and nothing is matched.
    """
    found = base_text(root, base, site.path)
    current = read_text(root, site.path)
    if found is None or current is None:
        return None
    ref, text = found
    for cwd in _cwds(root, config, site):
        ours = _same_kind(root, site, current, cwd)
        rank = next((i for i, s in enumerate(ours) if (s.line, s.col) == (site.line, site.col)), None)
        if rank is not None:
            theirs = _same_kind(root, site, text, cwd)
            return (ref, theirs[rank]) if len(ours) == len(theirs) else None
    return None


def _same_kind(root: Path, site: Site, text: str, cwd: str) -> list[Site]:
    found = (
        _flag_sites(root, site.path, text, site.key, cwd)
        if site.kind == "flag"
        else text_sites(site.path, text, (site.key,))
    )
    return [s for s in found if s.key == site.key and s.kind == site.kind]


def _flag_sites(root: Path, rel: str, text: str, key: str, cwd: str) -> list[Site]:
    """The values the launch script `rel`, written as `text`, passes for `key` as flags."""
    sites = []
    for inv in text_invocations(root, rel, text, cwd):
        overrides = view(root, inv).overrides
        sites += [o.site for o in overrides if o.site is not None and o.site.path == rel and o.site.key == key]
    return sites


def _cwds(root: Path, config: dict, site: Site) -> list[str]:
    """The folders a launch script may be called from (its Python paths are relative to them):
    the repo root, as launches mostly do, else where the launch runs its commands."""
    if site.kind != "flag":
        return [""]
    return list(dict.fromkeys(["", *(inv.cwd for inv in invocations(root, config))]))


def base_default(root: Path, config: dict, base: str | None, flag: Site) -> tuple[str, Site] | None:
    """(ref, site) of the declared default the base's runs used for a flag the branch added to
    a launch script: the invoked script's one default for the key (argparse, a dataclass field
    or a global) at the base, when the base's launch script passes no such flag at all."""
    if flag.kind != "flag":
        return None
    launch = base_text(root, base, flag.path)
    for found in launch_views(root, config):
        if not any(o.site == flag for o in found.overrides):
            continue
        if launch is not None and _flag_sites(root, flag.path, launch[1], flag.key, found.invocation.cwd):
            return None  # the base passes it too: base_site's case, not a default's
        script = base_text(root, base, found.invocation.script)
        if script is None:
            return None
        ref, text = script
        defaults = [
            s for s in text_sites(found.invocation.script, text, (flag.key,)) if s.kind in ("argparse", "assign")
        ]
        return (ref, defaults[0]) if len(defaults) == 1 else None
    return None
