"""Deterministic fixers: small rules, each acting only on evidence it can point to.

`propose_rule_fix` tries the rules registered for the diagnosis' category, in order, and
returns the first proposal. A rule that finds no evidence returns None and the next one runs;
when none fits, the pipeline moves on to the LLM fixer or gives up.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.fixers.model import FixContext, FixProposal
from bot.fixers.rules.config_default import add_config_default
from bot.fixers.rules.config_target import closest_target
from bot.fixers.rules.hyperparams import lower_batch_size, lower_lr
from bot.fixers.rules.local_import import fix_local_import
from bot.fixers.rules.missing_import import add_missing_import
from bot.fixers.rules.misspelt_read import restore_misspelt_read
from bot.fixers.rules.paths import closest_path
from bot.fixers.rules.rename_key import rename_unknown_key
from bot.fixers.rules.rename_value import rename_refused_value
from bot.fixers.rules.requirements import add_requirement
from bot.fixers.rules.yaml_tabs import indent_with_spaces

Rule = Callable[[FixContext], "FixProposal | None"]

# category → rules, most specific first.
RULES: dict[str, tuple[Rule, ...]] = {
    # Hydra's "Error loading 'a.b.C'" for a config's `_target_` wraps the import error.
    "import_error": (add_requirement, fix_local_import, add_missing_import, closest_target),
    # A missing script or folder a launch script names ("can't open file") is a configuration error.
    "config_error": (
        indent_with_spaces,
        rename_unknown_key,
        add_config_default,
        restore_misspelt_read,
        closest_path,
        closest_target,
        rename_refused_value,
    ),
    # A KeyError or NameError whose log does not show it reads configuration (`DEFAULTS["x"]`,
    # a global read inside a function): only the repo's code does, which add_config_default reads.
    # A library refusing a value the branch set, naming the one meant (gymnasium's env ids).
    "code_error": (add_config_default, restore_misspelt_read, rename_refused_value),
    "oom": (lower_batch_size,),
    "nan_loss": (lower_lr,),
    "data_not_found": (closest_path,),
}


def propose_rule_fix(ctx: FixContext) -> FixProposal | None:
    """The first proposal of the rules that fit `ctx.diagnosis.category`; None when none has evidence."""
    for rule in RULES.get(ctx.diagnosis.category, ()):
        proposal = rule(ctx)
        if proposal is not None:
            return proposal
    return None
