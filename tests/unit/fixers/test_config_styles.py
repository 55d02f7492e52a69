"""Rules across the config styles real repos use: argparse, dataclasses (tyro), nanoGPT-style
globals with an exec'd config file, Hydra YAML trees, launch scripts that pass flags. Each
repo here is a few lines written for the test, in the shape of the real thing."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.fixers.invocations import COMMAND, invocations
from bot.fixers.overrides import launch_views
from bot.fixers.rules import propose_rule_fix
from bot.fixers.value_source import config_files_used, sites_in_effect
from tests.unit.fixers.test_rules import apply, branch_repo, ctx_for, make_repo

ARGPARSE_TRAIN = """\
import argparse

if __name__ == '__main__':
    parser = argparse.ArgumentParser()
    parser.add_argument('--input-file', '-i', type=str, default='names.txt')
    parser.add_argument('--batch-size', '-b', type=int, default=32, help="batch size")
    parser.add_argument('--learning-rate', '-l', type=float, default=5e-4)
    parser.add_argument('--weight-decay', type=float, default=0.01)
    parser.add_argument('--track', action='store_true')
    args = parser.parse_args()
    warmup = args.warmup_steps
"""

DATACLASS_TRAIN = '''\
from dataclasses import dataclass

import tyro


@dataclass
class Args:
    seed: int = 1
    """seed of the experiment"""
    learning_rate: float = 2.5e-4
    """the learning rate"""
    ent_coef: float = 0.01
    """coefficient of the entropy"""
    vf_coef: float = 0.5
    """coefficient of the value function"""


if __name__ == "__main__":
    args = tyro.cli(Args)
    coef = args.ent_coef_final
'''

GLOBALS_TRAIN = """\
import math

batch_size = 12
learning_rate = 6e-4  # max learning rate
warmup_iters = 2000
config_keys = [k for k, v in globals().items() if not k.startswith('_')]
exec(open('configurator.py').read())  # overrides from command line or config file
lr_decay = lr_decay_iters * 2
"""

HYDRA_TRAIN = """\
import hydra


@hydra.main(version_base="1.3", config_path="../configs", config_name="train.yaml")
def main(cfg):
    return cfg.matmul_precision
"""

HYDRA_FILES = {
    "src/train.py": HYDRA_TRAIN,
    "configs/train.yaml": "defaults:\n  - _self_\n  - data: mnist\n  - model: mnist\n  - experiment: null\n\nseed: null\n",
    "configs/data/mnist.yaml": "batch_size: 128\nnum_workers: 0\n",
    "configs/model/mnist.yaml": "optimizer:\n  _target_: torch.optim.Adam\n  lr: 0.001\n  weight_decay: 0.0\n",
    "configs/callbacks/default.yaml": "early_stopping: null\n",
    "configs/callbacks/none.yaml": "{}\n",
    "configs/experiment/tiny.yaml": (
        "# @package _global_\ndefaults:\n  - override /data: mnist\n\nmodel:\n  optimizer:\n    lr: 0.002\ndata:\n  batch_size: 64\n"
    ),
}


def launch(command: str, **fix) -> dict:
    return {"launch": {"command": command}, **({"fix": fix} if fix else {})}


# --- reading the launch ------------------------------------------------------------------------


def test_invocations_follow_scripts_folders_and_continuations(tmp_path):
    root = make_repo(
        tmp_path,
        {
            "scripts/train.sh": "#!/bin/bash\nset -e\ncd exp  # the run folder\nWANDB_MODE=offline python ../train.py \\\n  --lr 0.1 \\\n  --batch-size=64\n",
            "train.py": "",
        },
    )
    [inv] = invocations(root, launch("bash scripts/train.sh"))
    assert (inv.script, inv.cwd) == ("train.py", "exp")
    assert [(w.text, w.path, w.line) for w in inv.args] == [
        ("--lr", "scripts/train.sh", 5),
        ("0.1", "scripts/train.sh", 5),
        ("--batch-size=64", "scripts/train.sh", 6),
    ]


def test_flags_map_to_argparse_dests_and_a_value_is_a_site(tmp_path):
    root = make_repo(tmp_path, {"train.py": ARGPARSE_TRAIN})
    [view] = launch_views(root, launch("python train.py -l 0.5 --batch-size='64' --track -i data/x.txt"))
    found = {o.key: (o.site.text if o.site else None) for o in view.overrides}
    assert found == {"learning_rate": "0.5", "batch_size": "64", "track": None, "input_file": "data/x.txt"}
    site = next(o.site for o in view.overrides if o.key == "batch_size")
    assert site.path == COMMAND and site.with_value("32").endswith("--batch-size='32' --track -i data/x.txt")


def test_hydra_app_composes_primary_groups_and_the_chosen_experiment(tmp_path):
    root = make_repo(tmp_path, HYDRA_FILES)
    config = launch("python src/train.py experiment=tiny model.optimizer.lr=0.5")
    assert config_files_used(root, config) == [
        "configs/data/mnist.yaml",
        "configs/model/mnist.yaml",
        "configs/train.yaml",
        "configs/experiment/tiny.yaml",
    ]
    assert [(s.path, s.text) for s in sites_in_effect(root, config, ("lr",))] == [
        (COMMAND, "0.5"),
        ("configs/experiment/tiny.yaml", "0.002"),
        ("configs/model/mnist.yaml", "0.001"),
    ]


# --- a hyperparameter is changed where the run got it -------------------------------------------


def nan(root: Path, **kwargs):
    return ctx_for(root, "nan_loss", "FloatingPointError", "Loss is NaN", **kwargs)


def test_lr_from_a_launch_script_flag_is_lowered_in_the_script(tmp_path):
    root = make_repo(tmp_path, {"train.py": ARGPARSE_TRAIN, "scripts/run.sh": "python train.py --learning-rate 0.5\n"})
    proposal = propose_rule_fix(nan(root, config=launch("bash scripts/run.sh")))
    apply(root, proposal.edits)
    assert (root / "scripts/run.sh").read_text() == "python train.py --learning-rate 0.05\n"
    assert "default=5e-4" in (root / "train.py").read_text()


def test_lr_the_branch_raised_in_an_execd_config_file_is_restored_from_the_base(tmp_path):
    # nanoGPT: the launch names config/train_tiny.py, exec'd over train.py's globals.
    tiny = "batch_size = 8\nlearning_rate = 1e-3 # small model\n"
    root = branch_repo(
        tmp_path,
        {"train.py": GLOBALS_TRAIN, "config/train_tiny.py": tiny},
        {"config/train_tiny.py": tiny.replace("1e-3", "1e1")},
    )
    ctx = nan(root, config=launch("python train.py config/train_tiny.py"), base_branch="main")
    proposal = propose_rule_fix(ctx)

    assert proposal.description == (
        "restore learning rate 1e-3 from main in config/train_tiny.py (the branch raised it to 1e1)"
    )
    apply(root, proposal.edits)
    assert (root / "config/train_tiny.py").read_text() == tiny


def test_lr_flag_the_branch_added_to_its_launch_script_is_set_back_to_the_bases_default(tmp_path):
    # pytorch/examples' mnist_rnn: main's script passes no --lr (argparse default 0.1); the branch
    # added `--lr 1e4`. A tenth (1e3) still diverged; main's run got 0.1.
    script = "cd app\npython train.py --epochs 2\n"
    root = branch_repo(
        tmp_path,
        {"app/train.py": ARGPARSE_TRAIN, "scripts/run.sh": script},
        {"scripts/run.sh": script.replace("--epochs 2", "--epochs 2 --learning-rate 5e1")},
    )
    ctx = nan(root, config=launch("bash scripts/run.sh"), base_branch="main")
    proposal = propose_rule_fix(ctx)

    assert proposal.description == (
        "restore learning rate 5e-4 from main in scripts/run.sh (the branch raised it to 5e1)"
    )
    assert proposal.evidence[-1].startswith("main:app/train.py:7: parser.add_argument('--learning-rate'")
    apply(root, proposal.edits)
    assert (root / "scripts/run.sh").read_text() == "cd app\npython train.py --epochs 2 --learning-rate 5e-4\n"


def test_lr_flag_the_base_passes_too_is_compared_flag_to_flag(tmp_path):
    script = "python train.py --learning-rate 1e-3\n"
    root = branch_repo(
        tmp_path,
        {"train.py": ARGPARSE_TRAIN, "scripts/run.sh": script},
        {"train.py": ARGPARSE_TRAIN.replace("5e-4", "5e1")},  # not the value in effect: the flag wins
    )
    proposal = propose_rule_fix(nan(root, config=launch("bash scripts/run.sh"), base_branch="main"))
    assert proposal.description == "lower learning rate 1e-3 → 1e-4 in scripts/run.sh"
    assert "(main's value too)" in proposal.root_cause


def test_lr_set_in_launch_command_itself_is_not_changed_elsewhere(tmp_path):
    root = make_repo(tmp_path, {"train.py": ARGPARSE_TRAIN})
    ctx = nan(root, config=launch("python train.py --learning-rate 0.5", allowed_paths=["**/*.py"]))
    assert propose_rule_fix(ctx) is None  # the argparse default is overridden: changing it does nothing


def test_lr_from_the_config_file_the_launch_names(tmp_path):
    root = make_repo(
        tmp_path,
        {
            "train.py": ARGPARSE_TRAIN.replace("--learning-rate', '-l'", "--lr'"),
            "configs/tiny.yaml": "model: resnet10t\nlr: 2.0\nbatch_size: 32\n",
            "configs/other.yaml": "lr: 2.0\n",
        },
    )
    proposal = propose_rule_fix(nan(root, config=launch("python train.py -c configs/tiny.yaml")))
    assert proposal.edits[0].path == "configs/tiny.yaml"
    apply(root, proposal.edits)
    assert "lr: 0.2\n" in (root / "configs/tiny.yaml").read_text()


def test_lr_in_a_hydra_experiment_file_beats_the_group_default(tmp_path):
    root = make_repo(tmp_path, HYDRA_FILES)
    proposal = propose_rule_fix(nan(root, config=launch("python src/train.py experiment=tiny")))
    assert proposal.edits[0].path == "configs/experiment/tiny.yaml"
    apply(root, proposal.edits)
    assert "    lr: 0.0002\n" in (root / "configs/experiment/tiny.yaml").read_text()


def test_lr_as_a_dataclass_default(tmp_path):
    root = make_repo(tmp_path, {"ppo.py": DATACLASS_TRAIN.replace("2.5e-4", "2.5")})
    proposal = propose_rule_fix(nan(root, config=launch("python ppo.py --seed 3"), run_config={"learning_rate": 2.5}))
    apply(root, proposal.edits)
    assert "    learning_rate: float = 0.25\n" in (root / "ppo.py").read_text()


def test_batch_size_from_a_launch_script_short_flag(tmp_path):
    root = make_repo(tmp_path, {"train.py": ARGPARSE_TRAIN, "run.sh": "python train.py -b 256 -l 0.1\n"})
    ctx = ctx_for(root, "oom", "OutOfMemoryError", "CUDA out of memory", config=launch("bash run.sh"))
    proposal = propose_rule_fix(ctx)
    apply(root, proposal.edits)
    assert (root / "run.sh").read_text() == "python train.py -b 128 -l 0.1\n"


# --- a missing key is declared in the repo's style ------------------------------------------------


def test_namespace_attribute_becomes_an_add_argument_with_the_documented_default(tmp_path):
    root = make_repo(
        tmp_path,
        {"train.py": ARGPARSE_TRAIN, "docs/exp/warmup.md": "# Warmup\n\nLinear warmup: warmup_steps = 10.\n"},
    )
    ctx = ctx_for(
        root,
        "config_error",
        "AttributeError",
        "'Namespace' object has no attribute 'warmup_steps'",
        file="train.py",
        line=11,
        branch="exp/warmup",
    )
    proposal = propose_rule_fix(ctx)
    assert proposal.fixer == "rule:config-default"
    apply(root, proposal.edits)
    text = (root / "train.py").read_text()
    assert "    parser.add_argument('--track', action='store_true')\n" in text
    assert "    parser.add_argument('--warmup-steps', type=int, default=10)\n    args = parser" in text
    assert "docs/exp/warmup.md: Linear warmup: warmup_steps = 10." in proposal.evidence


def test_namespace_attribute_without_evidence_is_not_guessed(tmp_path):
    root = make_repo(tmp_path, {"train.py": ARGPARSE_TRAIN})
    ctx = ctx_for(root, "config_error", "AttributeError", "'Namespace' object has no attribute 'warmup_steps'")
    assert propose_rule_fix(ctx) is None


LOOP = """\
import argparse

parser = argparse.ArgumentParser()
parser.add_argument('--log-interval', type=int, default=10)
parser.add_argument('--beta1', type=float, default=0.9)
args = parser.parse_args()
for step in range(100):
    loss = step * 0.5
    if step % args.log_interval == 0:
        print(loss)
"""


def misspelt(root, name: str, line: int = 9):
    message = f"'Namespace' object has no attribute '{name}'"
    return ctx_for(root, "config_error", "AttributeError", message, file="train.py", line=line, base_branch="main")


def test_a_line_the_branch_edited_into_reading_an_undeclared_key_reads_the_bases_key_again(tmp_path):
    # pytorch/examples' mnist_rnn: main read args.log_interval, the branch's edit args.log_intervall.
    branch = LOOP.replace("    if step % args.log_interval == 0:", "    if step % args.log_intervall == 0:")
    root = branch_repo(tmp_path, {"train.py": LOOP}, {"train.py": branch})
    proposal = propose_rule_fix(misspelt(root, "log_intervall"))

    assert proposal.fixer == "rule:misspelt-read"
    assert proposal.description == "read log_interval instead of the undeclared log_intervall in train.py (as main did)"
    assert "main:train.py: if step % args.log_interval == 0:" in proposal.evidence
    apply(root, proposal.edits)
    assert (root / "train.py").read_text() == LOOP


def test_a_misspelt_read_among_other_edits_of_the_line_is_read_right_and_the_edits_kept(tmp_path):
    # makemore: the branch tried beta2 = 0.95 and, on the same line, misspelt args.weight_decay.
    base = LOOP.replace("    loss = step * 0.5\n", "    loss = step * 0.5 + args.beta1 * 0.99\n")
    branch = base.replace("args.beta1 * 0.99", "args.beat1 * 0.95")
    root = branch_repo(tmp_path, {"train.py": base}, {"train.py": branch})
    proposal = propose_rule_fix(misspelt(root, "beat1", line=8))

    assert proposal.fixer == "rule:misspelt-read"
    apply(root, proposal.edits)
    assert (root / "train.py").read_text() == base.replace("0.99", "0.95")

    # A line rewritten rather than edited (its shape kept, most of its tokens new) is no evidence
    # of which key it meant.
    rewritten = base.replace("loss = step * 0.5 + args.beta1 * 0.99", "grad = 2 * 0.1 - args.beat1 / 0.9")
    root = branch_repo(tmp_path / "rewritten", {"train.py": base}, {"train.py": rewritten})
    assert propose_rule_fix(misspelt(root, "beat1", line=8)) is None


def test_a_new_read_of_an_undeclared_key_close_to_a_declared_one_is_not_renamed(tmp_path):
    # beta-VAE: `args.beta` is a new hyperparameter, not a misspelt `args.beta1`.
    branch = LOOP.replace("    loss = step * 0.5\n", "    loss = step * 0.5 * args.beta\n")
    root = branch_repo(tmp_path, {"train.py": LOOP}, {"train.py": branch})
    assert propose_rule_fix(misspelt(root, "beta", line=8)) is None


def test_a_line_the_branch_edited_into_reading_a_variant_of_the_key_is_not_renamed_back(tmp_path):
    # `log_interval2`, `log_interval_eval`: a second setting the branch meant to add.
    for variant in ("log_interval2", "log_interval_eval"):
        branch = LOOP.replace("args.log_interval ==", f"args.{variant} ==")
        root = branch_repo(tmp_path / variant, {"train.py": LOOP}, {"train.py": branch})
        assert propose_rule_fix(misspelt(root, variant)) is None, variant


def test_dataclass_attribute_becomes_a_field_beside_its_relative(tmp_path):
    root = make_repo(tmp_path, {"ppo.py": DATACLASS_TRAIN})
    ctx = ctx_for(
        root,
        "config_error",
        "AttributeError",
        "'Args' object has no attribute 'ent_coef_final'",
        hint="anneal the entropy bonus down to ent_coef_final=0.001",
    )
    proposal = propose_rule_fix(ctx)
    apply(root, proposal.edits)
    assert (
        '    """coefficient of the entropy"""\n    ent_coef_final: float = 0.001\n    vf_coef'
        in (root / "ppo.py").read_text()
    )


def test_name_error_on_a_config_global_adds_the_global(tmp_path):
    root = make_repo(
        tmp_path,
        {"train.py": GLOBALS_TRAIN, "config/train_small.py": "lr_decay_iters = 5000\nbatch_size = 8\n"},
    )
    ctx = ctx_for(root, "config_error", "NameError", "name 'lr_decay_iters' is not defined", file="train.py", line=8)
    proposal = propose_rule_fix(ctx)
    apply(root, proposal.edits)
    assert "warmup_iters = 2000\nlr_decay_iters = 5000\nconfig_keys" in (root / "train.py").read_text()


def test_a_new_config_global_goes_among_the_config_not_the_loop_state_after_it(tmp_path):
    # nanoGPT sets its loop's state as globals after the override: a key declared there could be
    # neither overridden (configurator.py knows only earlier globals) nor logged.
    train = GLOBALS_TRAIN + "iter_num = 0\nbest_val_loss = 1e9\nsmoothing = label_smoothing\n"
    root = make_repo(tmp_path, {"train.py": train, "docs/exp-a.md": "label_smoothing = 0.1\n"})
    ctx = ctx_for(root, "config_error", "NameError", "name 'label_smoothing' is not defined", file="train.py", line=11)
    apply(root, propose_rule_fix(ctx).edits)
    text = (root / "train.py").read_text()
    assert "warmup_iters = 2000\nlabel_smoothing = 0.1\nconfig_keys" in text
    assert text.count("label_smoothing = 0.1") == 1


def test_name_error_in_a_module_without_config_globals_is_a_plain_bug(tmp_path):
    root = make_repo(tmp_path, {"train.py": "x = 1\nprint(y)\n", "docs/exp-a.md": "y = 3\n"})
    ctx = ctx_for(root, "config_error", "NameError", "name 'y' is not defined", file="train.py", line=2)
    assert propose_rule_fix(ctx) is None


def test_hydra_top_level_key_goes_to_the_primary_config(tmp_path):
    root = make_repo(tmp_path, {**HYDRA_FILES, "docs/exp-a.md": "Use `matmul_precision: medium` for speed.\n"})
    ctx = ctx_for(
        root,
        "config_error",
        "omegaconf.errors.ConfigAttributeError",
        "Key 'matmul_precision' is not in struct\n    full_key: matmul_precision\n    object_type=dict",
        config=launch("python src/train.py experiment=tiny"),
    )
    proposal = propose_rule_fix(ctx)
    assert proposal.edits[0].path == "configs/train.yaml"
    apply(root, proposal.edits)
    assert (root / "configs/train.yaml").read_text().endswith("seed: null\nmatmul_precision: medium\n")


def test_hydra_group_key_goes_to_the_composed_group_file(tmp_path):
    root = make_repo(tmp_path, {**HYDRA_FILES, "docs/exp-a.md": "Set betas: 0.9 in the optimizer.\n"})
    ctx = ctx_for(
        root,
        "config_error",
        "omegaconf.errors.ConfigAttributeError",
        "Key 'momentum' is not in struct\n    full_key: model.optimizer.momentum",
        config=launch("python src/train.py experiment=tiny"),
        hint="momentum=0.9",
    )
    proposal = propose_rule_fix(ctx)
    apply(root, proposal.edits)
    assert "  weight_decay: 0.0\n  momentum: 0.9\n" in (root / "configs/model/mnist.yaml").read_text()


# --- an unknown override is renamed to the close existing key ---------------------------------------


def unknown(root: Path, message: str, config: dict, exc_type: str = "", *, earlier: str = "", **kwargs):
    log = [earlier, message] if earlier else [message]
    if exc_type:
        return ctx_for(root, "config_error", exc_type, message, config=config, **kwargs)
    return ctx_for(root, "config_error", config=config, log=log, **kwargs)


def test_unrecognized_argparse_flag_in_a_launch_script_is_renamed(tmp_path):
    root = make_repo(tmp_path, {"train.py": ARGPARSE_TRAIN, "run.sh": "python train.py --batch_size 64 -l 0.1\n"})
    ctx = unknown(root, "train.py: error: unrecognized arguments: --batch_size 64", launch("bash run.sh"))
    proposal = propose_rule_fix(ctx)
    assert proposal.fixer == "rule:rename-key"
    apply(root, proposal.edits)
    assert (root / "run.sh").read_text() == "python train.py --batch-size 64 -l 0.1\n"


def test_tyro_unrecognized_option_is_renamed_to_the_field_flag(tmp_path):
    root = make_repo(tmp_path, {"ppo.py": DATACLASS_TRAIN, "run.sh": "python ppo.py --seed 1 --learning-rat=0.1\n"})
    message = "│ Unrecognized options: --learning-rat=0.1                  │"
    ctx = ctx_for(root, "config_error", config=launch("bash run.sh"), log=["╭─ x ─╮", message])
    proposal = propose_rule_fix(ctx)
    apply(root, proposal.edits)
    assert (root / "run.sh").read_text() == "python ppo.py --seed 1 --learning-rate=0.1\n"


def test_unknown_flag_in_the_launch_command_is_left_alone(tmp_path):
    root = make_repo(tmp_path, {"train.py": ARGPARSE_TRAIN})
    ctx = unknown(root, "error: unrecognized arguments: --batch_size 64", launch("python train.py --batch_size 64"))
    assert propose_rule_fix(ctx) is None


def test_ambiguous_flag_is_not_renamed(tmp_path):
    root = make_repo(
        tmp_path,
        {
            "train.py": ARGPARSE_TRAIN.replace("--track'", "--weight-decays'"),
            "run.sh": "python train.py --weight-decayy 1\n",
        },
    )
    ctx = unknown(root, "error: unrecognized arguments: --weight-decayy 1", launch("bash run.sh"))
    assert propose_rule_fix(ctx) is None


MNIST_TRAIN = """\
import argparse

parser = argparse.ArgumentParser(description='PyTorch MNIST Example')
parser.add_argument('--batch-size', type=int, default=64, metavar='N',
                    help='input batch size for training (default: 64)')
parser.add_argument('--epochs', type=int, default=14, metavar='N',
                    help='number of epochs to train (default: 14)')
parser.add_argument('--lr', type=float, default=1.0, metavar='LR',
                    help='learning rate (default: 1.0)')
parser.add_argument('--gamma', type=float, default=0.7, metavar='M',
                    help='Learning rate step gamma (default: 0.7)')
args = parser.parse_args()
"""


REINFORCE = """\
import argparse

parser = argparse.ArgumentParser(description='PyTorch REINFORCE example')
parser.add_argument('--gamma', type=float, default=0.99, metavar='G',
                    help='discount factor (default: 0.99)')
parser.add_argument('--seed', type=int, default=543, metavar='N',
                    help='random seed (default: 543)')
args = parser.parse_args()
"""


def test_a_flag_the_help_of_one_declared_flag_names_is_renamed_to_it(tmp_path):
    # pytorch/examples' reinforcement_learning: the branch passes `--discount`, which the script
    # calls `--gamma`, "discount factor".
    root = make_repo(tmp_path, {"reinforce.py": REINFORCE, "run.sh": "python reinforce.py --discount 0.95\n"})
    ctx = unknown(root, "reinforce.py: error: unrecognized arguments: --discount 0.95", launch("bash run.sh"))
    proposal = propose_rule_fix(ctx)
    assert proposal.root_cause == (
        "The config has no --discount; --gamma is the one existing key whose description names it in words."
    )
    apply(root, proposal.edits)
    assert (root / "run.sh").read_text() == "python reinforce.py --gamma 0.95\n"


def test_long_form_of_a_declared_abbreviation_is_renamed_to_it(tmp_path):
    root = make_repo(tmp_path, {"main.py": MNIST_TRAIN, "run.sh": "python main.py --epochs 1 --learning-rate 0.5\n"})
    ctx = unknown(root, "main.py: error: unrecognized arguments: --learning-rate 0.5", launch("bash run.sh"))
    proposal = propose_rule_fix(ctx)
    assert proposal.fixer == "rule:rename-key"
    assert "abbreviation" in proposal.root_cause
    apply(root, proposal.edits)
    assert (root / "run.sh").read_text() == "python main.py --epochs 1 --lr 0.5\n"


def test_abbreviation_whose_help_spells_another_long_form_is_not_used(tmp_path):
    message = "main.py: error: unrecognized arguments: --local-rank 0"
    root = make_repo(tmp_path, {"main.py": MNIST_TRAIN, "run.sh": "python main.py --local-rank 0\n"})
    assert propose_rule_fix(unknown(root, message, launch("bash run.sh"))) is None  # `--lr` is the learning rate
    train = MNIST_TRAIN.replace("help='learning rate (default: 1.0)'", "help='local rank of the process'")
    (root / "main.py").write_text(train)
    assert propose_rule_fix(unknown(root, message, launch("bash run.sh"))) is not None


def test_nanogpt_abbreviated_config_key_is_renamed_to_the_global(tmp_path):
    root = make_repo(tmp_path, {"train.py": GLOBALS_TRAIN, "run.sh": "python train.py --batch_size=8 --lr=5e-4\n"})
    ctx = unknown(root, "Unknown config key: lr", launch("bash run.sh"), exc_type="ValueError")
    apply(root, propose_rule_fix(ctx).edits)
    assert (root / "run.sh").read_text() == "python train.py --batch_size=8 --learning_rate=5e-4\n"


AMBIGUOUS_TRAIN = """\
import argparse

parser = argparse.ArgumentParser()
parser.add_argument('--learning_rate')
parser.add_argument('--local_rank')
args = parser.parse_args()
"""


def test_abbreviation_of_two_declared_names_is_not_renamed(tmp_path):
    message = "train.py: error: unrecognized arguments: --lr 0.1"
    alone = make_repo(
        tmp_path / "alone",
        {
            "train.py": AMBIGUOUS_TRAIN.replace("parser.add_argument('--local_rank')\n", ""),
            "run.sh": "python train.py --lr 0.1\n",
        },
    )
    assert propose_rule_fix(unknown(alone, message, launch("bash run.sh"))) is not None
    both = make_repo(tmp_path / "both", {"train.py": AMBIGUOUS_TRAIN, "run.sh": "python train.py --lr 0.1\n"})
    assert propose_rule_fix(unknown(both, message, launch("bash run.sh"))) is None


def test_abbreviation_of_two_declared_names_is_settled_by_their_types(tmp_path):
    # `local_rank` is an int: nanoGPT's configurator would refuse 5e-4 for it, so `lr` means `learning_rate`.
    train = GLOBALS_TRAIN.replace("warmup_iters = 2000\n", "warmup_iters = 2000\nlocal_rank = 0\n")
    root = make_repo(tmp_path, {"train.py": train, "run.sh": "python train.py --lr=5e-4\n"})
    ctx = unknown(root, "Unknown config key: lr", launch("bash run.sh"), exc_type="ValueError")
    apply(root, propose_rule_fix(ctx).edits)
    assert (root / "run.sh").read_text() == "python train.py --learning_rate=5e-4\n"


def test_abbreviation_of_two_declared_names_is_settled_by_help_that_spells_it(tmp_path):
    train = AMBIGUOUS_TRAIN.replace("'--learning_rate'", "'--learning_rate', help='initial lr'")
    root = make_repo(tmp_path, {"train.py": train, "run.sh": "python train.py --lr 0.1\n"})
    ctx = unknown(root, "train.py: error: unrecognized arguments: --lr 0.1", launch("bash run.sh"))
    apply(root, propose_rule_fix(ctx).edits)
    assert (root / "run.sh").read_text() == "python train.py --learning_rate 0.1\n"


def test_a_typo_is_renamed_by_spelling_before_any_abbreviation(tmp_path):
    # `--learning-rat` is a typo of `--learning-rate`, and its initials are those of `--lr` too.
    train = MNIST_TRAIN.replace("'--gamma'", "'--learning-rate'")
    root = make_repo(tmp_path, {"main.py": train, "run.sh": "python main.py --learning-rat 0.5\n"})
    ctx = unknown(root, "main.py: error: unrecognized arguments: --learning-rat 0.5", launch("bash run.sh"))
    proposal = propose_rule_fix(ctx)
    assert "closest" in proposal.root_cause
    apply(root, proposal.edits)
    assert (root / "run.sh").read_text() == "python main.py --learning-rate 0.5\n"


def test_hydra_override_of_a_key_by_its_long_form_is_renamed_to_the_abbreviation(tmp_path):
    command = "python src/train.py experiment=tiny model.optimizer.learning_rate=0.01\n"
    root = make_repo(tmp_path, {**HYDRA_FILES, "train.sh": command})
    message = (
        "Could not override 'model.optimizer.learning_rate'.\n"
        "To append to your config use +model.optimizer.learning_rate=0.01"
    )
    ctx = unknown(root, message, launch("bash train.sh"), exc_type="hydra.errors.ConfigCompositionException")
    apply(root, propose_rule_fix(ctx).edits)
    assert (root / "train.sh").read_text() == "python src/train.py experiment=tiny model.optimizer.lr=0.01\n"


def test_nanogpt_unknown_config_key_is_renamed(tmp_path):
    root = make_repo(tmp_path, {"train.py": GLOBALS_TRAIN, "run.sh": "python train.py --warmup_iter=100\n"})
    ctx = unknown(root, "Unknown config key: warmup_iter", launch("bash run.sh"), exc_type="ValueError")
    apply(root, propose_rule_fix(ctx).edits)
    assert (root / "run.sh").read_text() == "python train.py --warmup_iters=100\n"


def test_hydra_override_of_a_missing_key_is_renamed(tmp_path):
    root = make_repo(tmp_path, {**HYDRA_FILES, "train.sh": "python src/train.py experiment=tiny data.batchsize=32\n"})
    message = "Could not override 'data.batchsize'.\nTo append to your config use +data.batchsize=32"
    ctx = unknown(root, message, launch("bash train.sh"), exc_type="hydra.errors.ConfigCompositionException")
    apply(root, propose_rule_fix(ctx).edits)
    assert (root / "train.sh").read_text() == "python src/train.py experiment=tiny data.batch_size=32\n"


def test_hydra_group_option_typo_in_an_experiment_is_renamed(tmp_path):
    files = dict(HYDRA_FILES)
    files["configs/experiment/tiny.yaml"] = files["configs/experiment/tiny.yaml"].replace(
        "  - override /data: mnist\n", "  - override /data: mnist\n  - override /callbacks: defualt\n"
    )
    root = make_repo(tmp_path, files)
    message = "In 'experiment/tiny': Could not override 'callbacks'. No match in the defaults list."
    message2 = "Could not find 'callbacks/defualt'\n\nAvailable options in 'callbacks':\n\tdefault\n\tnone"
    ctx = unknown(root, message2, launch("python src/train.py experiment=tiny"), earlier=message)
    apply(root, propose_rule_fix(ctx).edits)
    assert "  - override /callbacks: default\n" in (root / "configs/experiment/tiny.yaml").read_text()


def test_yaml_key_refused_by_the_class_is_renamed(tmp_path):
    files = dict(HYDRA_FILES)
    files["configs/experiment/tiny.yaml"] = files["configs/experiment/tiny.yaml"].replace(
        "  batch_size: 64", "  batchsize: 64"
    )
    root = make_repo(tmp_path, files)
    message = (
        "Error in call to target 'src.data.mnist_datamodule.MNISTDataModule':\n"
        "TypeError(\"MNISTDataModule.__init__() got an unexpected keyword argument 'batchsize'\")\nfull_key: data"
    )
    ctx = unknown(root, message, launch("python src/train.py experiment=tiny"), exc_type="InstantiationException")
    apply(root, propose_rule_fix(ctx).edits)
    assert "data:\n  batch_size: 64\n" in (root / "configs/experiment/tiny.yaml").read_text()


# --- paths -----------------------------------------------------------------------------------------


def not_found(root: Path, path: str, **kwargs):
    message = f"[Errno 2] No such file or directory: '{path}'"
    return ctx_for(root, "data_not_found", "FileNotFoundError", message, **kwargs)


def test_a_job_that_changes_folder_reads_paths_from_there(tmp_path):
    root = make_repo(
        tmp_path,
        {
            "train.py": ARGPARSE_TRAIN,
            "names.txt": "emma\n",
            "runs/.keep": "",
            "run.sh": "cd runs\npython ../train.py -i names.txt\n",
        },
    )
    proposal = propose_rule_fix(not_found(root, "names.txt", config=launch("bash run.sh")))
    apply(root, proposal.edits)
    assert (root / "run.sh").read_text() == "cd runs\npython ../train.py -i ../names.txt\n"


def test_a_misspelt_flag_value_in_a_launch_script_is_corrected(tmp_path):
    root = make_repo(
        tmp_path,
        {"train.py": ARGPARSE_TRAIN, "data/names.txt": "emma\n", "run.sh": "python train.py -i data/name.txt -b 4\n"},
    )
    proposal = propose_rule_fix(not_found(root, "data/name.txt", config=launch("bash run.sh")))
    apply(root, proposal.edits)
    assert (root / "run.sh").read_text() == "python train.py -i data/names.txt -b 4\n"


def test_a_joined_path_is_fixed_in_the_root_it_was_joined_to(tmp_path):
    root = make_repo(
        tmp_path,
        {
            "data/train.csv": "a\n",
            "config.yaml": "data_root: dat\ntrain_file: train.csv\n",
            "train.py": "import os\npath = os.path.join(cfg['data_root'], cfg['train_file'])\n",
        },
    )
    proposal = propose_rule_fix(not_found(root, "/job/worktree/dat/train.csv"))
    apply(root, proposal.edits)
    assert (root / "config.yaml").read_text() == "data_root: data\ntrain_file: train.csv\n"


def test_a_misspelt_script_a_launch_script_runs_is_corrected(tmp_path):
    # pytorch/examples' time_sequence_prediction run from a script that `cd`s into its folder
    root = make_repo(tmp_path, {"tsp/train.py": ARGPARSE_TRAIN, "run.sh": "cd tsp\npython trian.py --steps 2\n"})
    log = [f"/venv/bin/python: can't open file '{root}/tsp/trian.py': [Errno 2] No such file or directory"]
    proposal = propose_rule_fix(ctx_for(root, "config_error", config=launch("bash run.sh"), log=log))
    assert proposal.fixer == "rule:closest-path"
    apply(root, proposal.edits)
    assert (root / "run.sh").read_text() == "cd tsp\npython train.py --steps 2\n"


@pytest.mark.parametrize("set_e", [True, False])
def test_a_misspelt_folder_a_launch_script_cds_into_is_corrected(tmp_path, set_e):
    script = ("set -e\n" if set_e else "") + "cd time_sequence_predicton\npython train.py --steps 2\n"
    root = make_repo(tmp_path, {"time_sequence_prediction/train.py": ARGPARSE_TRAIN, "run.sh": script})
    log = [f"run.sh: line {2 if set_e else 1}: cd: time_sequence_predicton: No such file or directory"]
    if not set_e:  # the script went on, in the folder it started in
        log.append(f"/venv/bin/python: can't open file '{root}/train.py': [Errno 2] No such file or directory")
    proposal = propose_rule_fix(ctx_for(root, "config_error", config=launch("bash run.sh"), log=log))
    apply(root, proposal.edits)
    assert (root / "run.sh").read_text() == script.replace("predicton", "prediction")


TIMM_LIKE = """\
import argparse
from lib import create_dataset

parser = argparse.ArgumentParser()
parser.add_argument('--data-dir', default=None)
parser.add_argument('--dataset', default='')
args = parser.parse_args()
ds = create_dataset(
    args.dataset,
    root=args.data_dir,
)
"""


def test_a_bare_exists_assertion_finds_the_path_in_the_config_the_call_passed(tmp_path):
    root = make_repo(
        tmp_path,
        {
            "train.py": TIMM_LIKE,
            "configs/tiny.yaml": "data_dir: data/tiny-cifr\nlr: 0.1\n",
            "data/tiny-cifar/x.png": "",
        },
    )
    log = [
        "Traceback (most recent call last):",
        f'  File "{root}/train.py", line 8, in <module>',
        "    ds = create_dataset(",
        '  File "/venv/lib/python3.11/site-packages/lib/readers.py", line 41, in create_reader',
        "    assert os.path.exists(root)",
        "AssertionError",
    ]
    ctx = ctx_for(root, "data_not_found", config=launch("python train.py -c configs/tiny.yaml"), log=log)
    proposal = propose_rule_fix(ctx)
    apply(root, proposal.edits)
    assert (root / "configs/tiny.yaml").read_text() == "data_dir: data/tiny-cifar\nlr: 0.1\n"


# minGPT's CfgNode: sections of a config object built by each class's `get_default_config()`,
# overridden by `--section.key=value` flags that `merge_from_args` asserts the config has.
CFGNODE_FILES = {
    "mingpt/trainer.py": (
        "class Trainer:\n    @staticmethod\n    def get_default_config():\n        C = CN()\n"
        "        C.batch_size = 64\n        C.learning_rate = 3e-4\n        return C\n"
    ),
    "projects/chargpt.py": (
        "from mingpt.trainer import Trainer\n\ndef get_config():\n    C = CN()\n    C.system = CN()\n"
        "    C.system.seed = 3407\n    C.trainer = Trainer.get_default_config()\n"
        "    C.trainer.learning_rate = 5e-4\n    return C\n\nconfig = get_config()\nconfig.merge_from_args(sys.argv[1:])\n"
    ),
}


def test_cfgnode_flag_is_renamed_to_a_key_the_script_sets_in_its_section(tmp_path):
    root = make_repo(tmp_path, {**CFGNODE_FILES, "run.sh": "python projects/chargpt.py --trainer.lr=1e-3\n"})
    message = "AssertionError: trainer.lr is not an attribute that exists in the config"
    apply(root, propose_rule_fix(unknown(root, message, launch("bash run.sh"), exc_type="AssertionError")).edits)
    assert (root / "run.sh").read_text() == "python projects/chargpt.py --trainer.learning_rate=1e-3\n"


def test_cfgnode_flag_is_renamed_to_a_key_of_its_sections_defaults_in_another_module(tmp_path):
    root = make_repo(tmp_path, {**CFGNODE_FILES, "run.sh": "python projects/chargpt.py --trainer.batchsize=8\n"})
    message = "AssertionError: trainer.batchsize is not an attribute that exists in the config"
    apply(root, propose_rule_fix(unknown(root, message, launch("bash run.sh"), exc_type="AssertionError")).edits)
    assert (root / "run.sh").read_text() == "python projects/chargpt.py --trainer.batch_size=8\n"


def test_cfgnode_flag_is_not_renamed_to_a_key_of_another_section(tmp_path):
    root = make_repo(tmp_path, {**CFGNODE_FILES, "run.sh": "python projects/chargpt.py --system.batchsize=8\n"})
    message = "AssertionError: system.batchsize is not an attribute that exists in the config"
    assert propose_rule_fix(unknown(root, message, launch("bash run.sh"), exc_type="AssertionError")) is None


# --- a value the branch set that the code refuses, naming the one meant ---------------------------

RL_TRAIN = "import gymnasium as gym\n\nenv = gym.make(args.env_id)\n"


def refused(root: Path, category: str, exc: str, message: str, command: str = "bash run.sh"):
    return ctx_for(root, category, exc, message, file="train.py", line=3, base_branch="main", config=launch(command))


def test_an_environment_id_a_library_refuses_becomes_the_one_it_suggests_where_the_branch_set_it(tmp_path):
    # cleanrl: `--env-id Cartpole-v0`; gymnasium: "Environment `Cartpole` doesn't exist. Did you mean: `CartPole`?"
    base = {"train.py": RL_TRAIN, "run.sh": "python train.py --env-id CartPole-v1\n"}
    root = branch_repo(tmp_path, base, {"run.sh": "python train.py --env-id Cartpole-v0\n"})
    message = "Environment `Cartpole` doesn't exist. Did you mean: `CartPole`?"
    proposal = propose_rule_fix(refused(root, "code_error", "gymnasium.error.NameNotFound", message))

    assert proposal.fixer == "rule:rename-value"
    apply(root, proposal.edits)
    assert (root / "run.sh").read_text() == "python train.py --env-id CartPole-v0\n"


def test_a_choice_argparse_refuses_becomes_the_one_close_choice(tmp_path):
    base = {"train.py": RL_TRAIN, "run.sh": "python train.py\n"}
    root = branch_repo(tmp_path, base, {"run.sh": "python train.py --schedule cosin\n"})
    message = "argument --schedule: invalid choice: 'cosin' (choose from 'cosine', 'step', 'linear')"
    log = ["usage: train.py [-h] [--schedule {cosine,step,linear}]", f"train.py: error: {message}"]
    proposal = propose_rule_fix(
        ctx_for(root, "config_error", log=log, base_branch="main", config=launch("bash run.sh"))
    )

    apply(root, proposal.edits)
    assert (root / "run.sh").read_text() == "python train.py --schedule cosine\n"


def test_a_refused_value_the_base_has_too_or_a_pythons_own_hint_is_left_alone(tmp_path):
    # The same id on main's line: not the branch's doing. Python's hint for a name or attribute
    # is the nearest spelling, no evidence of intent.
    same = {"train.py": RL_TRAIN, "run.sh": "python train.py --env-id Cartpole-v0\n"}
    root = branch_repo(tmp_path / "base", same, {"docs/exp.md": "# exp\n"})
    message = "Environment `Cartpole` doesn't exist. Did you mean: `CartPole`?"
    assert propose_rule_fix(refused(root, "code_error", "gymnasium.error.NameNotFound", message)) is None

    code = RL_TRAIN.replace("gym.make(args.env_id)", "gym.make(args.env_id)\nsteps = lenght")
    root = branch_repo(tmp_path / "hint", {"train.py": RL_TRAIN}, {"train.py": code})
    message = "name 'lenght' is not defined. Did you mean: 'length'?"
    ctx = ctx_for(root, "config_error", "NameError", message, file="train.py", line=4, base_branch="main")
    assert propose_rule_fix(ctx) is None


# --- a YAML file indented with tabs ----------------------------------------------------------------

EXPERIMENT = "trainer:\n  min_epochs: 1\n  max_epochs: 3\n\nmodel:\n  optimizer:\n    lr: 0.002\n"


def test_a_yaml_file_indented_with_tabs_is_indented_with_its_own_spaces(tmp_path):
    # lightning-hydra-template: the branch indents two keys with tabs; PyYAML names the first.
    tabbed = EXPERIMENT.replace("  max_epochs: 3", "\tmax_epochs: 3").replace("    lr:", "\t\tlr:")
    root = make_repo(tmp_path, {"configs/experiment/tiny.yaml": tabbed})
    log = [
        "Traceback (most recent call last):",
        '  File "/env/lib/python3.11/site-packages/yaml/scanner.py", line 258, in fetch_more_tokens',
        '    raise ScannerError("while scanning for the next token", None,',
        "yaml.scanner.ScannerError: while scanning for the next token",
        "found character '\\t' that cannot start any token",
        f'  in "{root}/configs/experiment/tiny.yaml", line 3, column 1',
    ]
    proposal = propose_rule_fix(ctx_for(root, "config_error", log=log))

    assert proposal.fixer == "rule:yaml-spaces"
    apply(root, proposal.edits)
    assert (root / "configs/experiment/tiny.yaml").read_text() == EXPERIMENT
