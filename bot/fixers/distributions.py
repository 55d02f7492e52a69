"""Import name → PyPI distribution name, for adding a missing dependency to requirements.txt.

Sources, first hit wins:
1. `importlib.metadata.packages_distributions()`: what is installed next to the bot, exact.
2. The import→distribution mapping that pipreqs maintains (~1,150 pairs: `PIL` → Pillow,
   `sklearn` → scikit-learn, `yaml` → PyYAML), shipped as `data/distributions.txt` (see
   `data/SOURCE.md` for its origin and license).
3. A few pairs that mapping lacks but ML repos import all the time.
4. The import name itself when it is a plausible PyPI name (most packages: torch, einops).

Everything loads lazily, once, and is cached.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from functools import cache
from importlib import resources

# Gaps in pipreqs 0.5.0's mapping, each verified by hand; keep this short.
_GAPS = {"cv2": "opencv-python"}

_PYPI_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")


def top_level(module: str) -> str:
    """`sklearn.utils` → `sklearn`."""
    return module.split(".", 1)[0]


def is_stdlib(module: str) -> bool:
    return top_level(module) in sys.stdlib_module_names


def distribution_for(module: str, *, guess: bool = True) -> str | None:
    """The distribution to install so that `import module` works; None for stdlib or nonsense.

    With `guess=False` only a mapping may answer, not the import name itself."""
    name = top_level(module)
    if not name or is_stdlib(name):
        return None
    for lookup in (_installed, _shipped_mapping, lambda: _GAPS):
        if name in lookup():
            dist = lookup()[name]
            return _pretty(dist) if dist else None  # None: a namespace shared by many (azure, plone)
    if not guess:
        return None
    return name if _PYPI_NAME.match(name) and not name.startswith("_") else None


def canonical(dist: str) -> str:
    """PEP 503 normalised name, for comparing `scikit_learn` with `Scikit-Learn`."""
    return re.sub(r"[-_.]+", "-", dist).lower()


def _pretty(dist: str) -> str:
    # pipreqs writes `scikit_learn`; PyPI and people write `scikit-learn`.
    return dist.replace("_", "-")


@cache
def _installed() -> dict[str, str]:
    """Import names with exactly one installed distribution (namespace packages are ambiguous)."""
    mapping = importlib.metadata.packages_distributions()
    return {name: dists[0] for name, dists in mapping.items() if len(set(dists)) == 1}


@cache
def _shipped_mapping() -> dict[str, str | None]:
    """pipreqs' mapping, shipped with the bot as `data/distributions.txt`."""
    text = resources.files("bot.fixers").joinpath("data/distributions.txt").read_text(encoding="utf-8")
    return _parse_mapping(text)


def _parse_mapping(text: str) -> dict[str, str | None]:
    """`import:dist` lines; an import name listed with several distributions maps to None."""
    mapping: dict[str, str | None] = {}
    for line in text.splitlines():
        name, _, dist = line.strip().partition(":")
        if name and dist:
            mapping[name] = dist if mapping.get(name, dist) == dist else None
    return mapping
