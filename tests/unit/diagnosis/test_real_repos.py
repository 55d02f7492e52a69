"""Diagnosis the way real training repositories fail (issue 10): config styles other than a
dict literal, signals and scheduler verdicts without a word in the log, paths that happen to
contain category words, and divergence that crashes code far from the loss."""

from __future__ import annotations

import pytest

from bot.diagnosis import diagnose_lines, diagnose_text
from bot.diagnosis.facts import RunFacts
from bot.diagnosis.model import ConfigKey, KeyProblem


def tb(*frames: tuple[str, int, str, str], error: str) -> str:
    lines = ["Traceback (most recent call last):"]
    for file, line, func, code in frames:
        lines += [f'  File "{file}", line {line}, in {func}', f"    {code}"]
    return "\n".join(lines + [error])


# -- config styles → config_error, with the key named ----------------------------------------------

ARGPARSE_ATTR = tb(
    ("/home/ana/makemore/makemore.py", 613, "<module>", "warmup = args.warmup_steps"),
    error="AttributeError: 'Namespace' object has no attribute 'warmup_steps'",
)
NANOGPT_GLOBAL = tb(
    ("/home/ana/nanoGPT/train.py", 231, "<module>", "lr = get_lr(iter_num) if decay_lr else learning_rate"),
    error="NameError: name 'decay_lr' is not defined",
)
NANOGPT_CONFIGURATOR = "Overriding config with config/train_shakespeare_char.py:\n" + tb(
    ("/home/ana/nanoGPT/train.py", 77, "<module>", "exec(open('configurator.py').read())"),
    ("<string>", 47, "<module>", ""),
    error="ValueError: Unknown config key: warmup_iter",
)
OMEGACONF_ATTR = (
    "Error executing job with overrides: ['experiment=tiny_cpu']\n"
    + tb(
        ("/home/ana/lht/src/train.py", 61, "train", "warmup = cfg.model.warmup"),
        error="omegaconf.errors.ConfigAttributeError: Key 'warmup' is not in struct\n"
        "    full_key: model.warmup\n    object_type=dict",
    )
    + "\n\nSet the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."
)
HYDRA_OVERRIDE = """Could not override 'trainer.max_epochz'.
To append to your config use +trainer.max_epochz=4
Key 'max_epochz' is not in struct
    full_key: trainer.max_epochz
    object_type=dict

Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."""
MANDATORY = tb(
    ("/w/src/train.py", 40, "main", "optimizer = build(cfg.optim)"),
    error="omegaconf.errors.MissingMandatoryValue: Missing mandatory value: optim.lr\n    full_key: optim.lr",
)
ARGPARSE_FLAG = """usage: train.py [-h] [-c CONFIG] [--lr LR] [--epochs EPOCHS]
train.py: error: unrecognized arguments: --lr_decay 0.1"""
TYRO_FLAG = """╭─ Unrecognized options ────────────────────╮
│ Unrecognized options: --learning-ratee, 3 │
│ ───────────────────────────────────────── │
│ Perhaps you meant:                        │
│     --learning-rate FLOAT                 │
│         (default: 0.00025)                │
│ ───────────────────────────────────────── │
│ For full helptext, run ppo.py --help      │
╰───────────────────────────────────────────╯"""
TYRO_REQUIRED = """╭─ Required options ──────╮
│ Missing from ppo.py:    │
│     --env-id STR        │
│         (required)      │
╰─────────────────────────╯"""
HF_PARSER = tb(
    ("run_clm.py", 250, "main", "model_args, data_args, training_args = parser.parse_args_into_dataclasses()"),
    (
        "/opt/venv/lib/python3.11/site-packages/transformers/hf_argparser.py",
        348,
        "parse_args_into_dataclasses",
        "raise",
    ),
    error="ValueError: Some specified arguments are not used by the HfArgumentParser: ['--warmup_ratioo', '0.1']",
)
HYDRA_OPTION = """In 'train.yaml': Could not find 'callbacks/defualt'

Available options in 'callbacks':
	default
	none
Config search path:
	provider=main, path=file:///home/ana/lht/configs

Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."""
HYDRA_INSTANTIATE = "Error executing job with overrides: ['experiment=tiny_cpu']\n" + tb(
    ("/home/ana/lht/src/train.py", 58, "train", "datamodule = hydra.utils.instantiate(cfg.data)"),
    (
        "/opt/venv/lib/python3.11/site-packages/hydra/_internal/instantiate/_instantiate2.py",
        97,
        "_call_target",
        "raise InstantiationException(msg) from e",
    ),
    error="hydra.errors.InstantiationException: Error in call to target 'src.data.MNISTDataModule':\n"
    "TypeError(\"MNISTDataModule.__init__() got an unexpected keyword argument 'batchsize'\")\nfull_key: data",
)
ABSL = "FATAL Flags parsing error: Unknown command line flag 'learning_rat'. Did you mean: learning_rate ?"
ML_COLLECTIONS = tb(
    ("/w/main.py", 30, "train", "lr = config.lrr"),
    ("/opt/venv/lib/python3.11/site-packages/ml_collections/config_dict/config_dict.py", 829, "__getattr__", "raise"),
    error='AttributeError: "\'lrr\'\nDid you mean "lr" instead of "lrr"?"',
)

MINGPT_CFGNODE = tb(
    ("/home/ana/minGPT/projects/chargpt/chargpt.py", 91, "<module>", "config.merge_from_args(sys.argv[1:])"),
    (
        "/home/ana/minGPT/mingpt/utils.py",
        99,
        "merge_from_args",
        'assert hasattr(obj, leaf_key), f"{key} is not an attribute that exists in the config"',
    ),
    error="AssertionError: trainer.lr is not an attribute that exists in the config",
)


@pytest.mark.parametrize(
    "log, key",
    [
        (ARGPARSE_ATTR, ConfigKey("warmup_steps", KeyProblem.MISSING, holder="Namespace")),
        (NANOGPT_GLOBAL, ConfigKey("decay_lr", KeyProblem.MISSING)),
        (NANOGPT_CONFIGURATOR, ConfigKey("warmup_iter", KeyProblem.UNKNOWN)),
        (OMEGACONF_ATTR, ConfigKey("model.warmup", KeyProblem.MISSING)),
        (HYDRA_OVERRIDE, ConfigKey("trainer.max_epochz", KeyProblem.UNKNOWN)),
        (MANDATORY, ConfigKey("optim.lr", KeyProblem.MISSING)),
        (ARGPARSE_FLAG, ConfigKey("lr_decay", KeyProblem.UNKNOWN, "--lr_decay")),
        (TYRO_FLAG, ConfigKey("learning-ratee", KeyProblem.UNKNOWN, "--learning-ratee", "--learning-rate")),
        (TYRO_REQUIRED, ConfigKey("env-id", KeyProblem.MISSING, "--env-id")),
        (HF_PARSER, ConfigKey("warmup_ratioo", KeyProblem.UNKNOWN, "--warmup_ratioo")),
        (ABSL, ConfigKey("learning_rat", KeyProblem.UNKNOWN, "--learning_rat", "learning_rate")),
        (ML_COLLECTIONS, ConfigKey("lrr", KeyProblem.MISSING, suggestion="lr")),
        (HYDRA_OPTION, ConfigKey("callbacks/defualt", KeyProblem.UNKNOWN)),
        (HYDRA_INSTANTIATE, ConfigKey("batchsize", KeyProblem.UNKNOWN)),
        (MINGPT_CFGNODE, ConfigKey("trainer.lr", KeyProblem.UNKNOWN)),
        ("KeyError: 'Non-existent config key: SOLVER.BASE_LRR'", ConfigKey("SOLVER.BASE_LRR", KeyProblem.UNKNOWN)),
    ],
)
def test_every_config_style_is_a_config_error_naming_its_key(log, key):
    d = diagnose_text(log)
    assert d.category == "config_error", d.summary
    assert d.config_key == key
    assert d.to_json()["config_key"]["problem"] == key.problem.value


def test_a_name_error_inside_a_function_is_still_code():
    log = tb(("/w/train.py", 12, "train", "y = modle(x)"), error="NameError: name 'modle' is not defined")
    assert diagnose_text(log).category == "code_error"


@pytest.mark.parametrize(
    "line, error, name",
    [
        ("lr = base_lr * warmup_frac", "NameError: name 'warmup_frac' is not defined", "warmup_frac"),
        ("steps = DEFAULTS['warmup_steps']", "KeyError: 'warmup_steps'", "warmup_steps"),
    ],
)
def test_a_code_error_lookup_names_what_it_looked_up(line, error, name):
    """Whether the name is configuration only the repo's code can say: the fixer reads it."""
    d = diagnose_text(tb(("/w/train.py", 12, "train", line), error=error))
    assert d.category == "code_error"
    assert d.config_key == ConfigKey(name, KeyProblem.MISSING)


def test_an_attribute_error_on_a_tensor_is_code_not_config():
    log = tb(
        ("/w/train.py", 12, "train", "y = x.sizes()"), error="AttributeError: 'Tensor' object has no attribute 'sizes'"
    )
    d = diagnose_text(log)
    assert d.category == "code_error" and d.config_key is None
    assert "config_key" not in d.to_json(), "the DESIGN.md keys only, when there is no key to name"


# -- a bare assertion that a path exists ----------------------------------------------------------

TIMM_ASSERT = tb(
    ("/home/ana/timm/train.py", 632, "main", "dataset_train = create_dataset("),
    ("/opt/venv/lib/python3.11/site-packages/timm/data/dataset.py", 37, "__init__", "reader = create_reader("),
    (
        "/opt/venv/lib/python3.11/site-packages/timm/data/readers/reader_factory.py",
        41,
        "create_reader",
        "assert os.path.exists(root)",
    ),
    error="AssertionError",
)


@pytest.mark.parametrize(
    "code", ["assert os.path.exists(root)", "assert os.path.isdir(cfg.data_dir), 'no data'", "assert Path(p).exists()"]
)
def test_a_failed_assertion_that_a_path_exists_is_data_not_found(code):
    log = TIMM_ASSERT.replace("assert os.path.exists(root)", code)
    assert diagnose_text(log).category == "data_not_found"


def test_any_other_bare_assertion_is_code():
    assert diagnose_text(TIMM_ASSERT.replace("os.path.exists(root)", "len(batch) > 0")).category == "code_error"


# -- paths are names, not signals -----------------------------------------------------------------


@pytest.mark.parametrize("folder", ["oom-test", "nan_runs", "data", "preempted-jobs", "segfault-repro", "OOMKilled"])
def test_a_folder_named_like_a_category_does_not_decide(folder):
    warning = (
        f"/home/ana/{folder}/.venv/lib/python3.11/site-packages/torch/utils/data/dataloader.py:557: UserWarning: "
        "This DataLoader will create 8 worker processes in total."
    )
    crash = tb(
        (f"/home/ana/{folder}/src/train.py", 40, "train", "scale = cfg_scale / 0"),
        error="ZeroDivisionError: division by zero",
    )
    d = diagnose_text(warning + "\n" + crash)
    assert d.category == "code_error", d.evidence


def test_a_missing_config_file_is_still_told_by_its_name():
    d = diagnose_text("FileNotFoundError: [Errno 2] No such file or directory: '/home/ana/conf-test/data/train.csv'")
    assert d.category == "data_not_found"
    assert (
        diagnose_text("FileNotFoundError: [Errno 2] No such file or directory: 'configs/exp.yaml'").category
        == "config_error"
    )


def test_a_stray_network_warning_does_not_outweigh_the_failing_exception():
    log = "wandb: Network error (ConnectionError), entering retry loop.\n" + tb(
        ("/w/train.py", 88, "train", "idx = order[step]"), error="IndexError: list index out of range"
    )
    assert diagnose_text(log).category == "code_error"


# -- signals, OOM kills and scheduler verdicts as evidence ----------------------------------------


def test_sigterm_with_a_silent_log_is_retryable_infra():
    d = diagnose_lines(["step 10 loss 2.3", "step 11 loss 2.2"], facts=RunFacts(exit_code=143))
    assert (d.category, d.retryable) == ("infra", True)
    assert "SIGTERM" in d.summary and any("exit code 143" in line for line in d.evidence)


def test_sigkill_without_oom_evidence_is_retryable_infra():
    d = diagnose_lines(["step 10 loss 2.3"], facts=RunFacts(exit_code=137))
    assert (d.category, d.retryable) == ("infra", True)
    assert "SIGKILL" in d.summary


def test_sigkill_with_oom_evidence_is_oom():
    kernel = "Out of memory: Killed process 4242 (python) total-vm:92000000kB"
    assert diagnose_lines([kernel], facts=RunFacts(exit_code=137)).category == "oom"
    d = diagnose_lines(["step 10 loss 2.3"], facts=RunFacts(exit_code=137, oom_kills=1))
    assert (d.category, d.retryable) == ("oom", False)
    assert "OOM killer" in d.summary


def test_a_scheduler_verdict_decides():
    assert diagnose_lines([], facts=RunFacts(exit_code=0, scheduler="PREEMPTED")).retryable
    assert diagnose_lines([], facts=RunFacts(scheduler="OUT_OF_MEMORY")).category == "oom"


def test_an_exception_with_exit_code_1_is_not_a_signal():
    log = tb(("/w/train.py", 3, "f", "x = y[3]"), error="IndexError: list index out of range")
    assert diagnose_text(log, facts=RunFacts(exit_code=1)).category == "code_error"


# -- divergence, direct and indirect --------------------------------------------------------------

PERPLEXITY = tb(
    ("/w/train.py", 120, "evaluate", "ppl = math.exp(loss)"),
    error="OverflowError: math range error",
)


def test_an_overflow_in_perplexity_while_the_loss_rises_is_nan_loss():
    d = diagnose_text(PERPLEXITY, facts=RunFacts(exit_code=1, loss_rising=True))
    assert d.category == "nan_loss"
    assert d.exception == {"type": "OverflowError", "message": "math range error"}
    assert diagnose_text(PERPLEXITY).category == "nan_loss", "math.exp(loss) overflowing says so on its own"


def test_inf_in_a_logging_line_with_an_exploded_loss_is_nan_loss():
    log = tb(
        ("/w/train.py", 99, "log_metrics", "f.write(json.dumps(metrics))"),
        ("/usr/lib/python3.11/json/encoder.py", 258, "iterencode", "return _iterencode(o, 0)"),
        error="ValueError: Out of range float values are not JSON compliant",
    )
    facts = RunFacts(exit_code=1, loss_problem="loss is diverging: 4.6 → 446 by step 40", loss_rising=True)
    assert diagnose_text(log, facts=facts).category == "nan_loss"


def test_binary_cross_entropy_refusing_a_nan_probability_with_an_exploded_loss_is_nan_loss():
    """pytorch/examples' VAE at lr 10: 550 → 1.6e13, then BCE's range check fails on the NaN that
    the sigmoid passed on."""
    log = tb(
        ("/w/vae/main.py", 101, "train", "loss = loss_function(recon_batch, data, mu, logvar)"),
        (
            "/w/vae/main.py",
            83,
            "loss_function",
            "BCE = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction='sum')",
        ),
        error="RuntimeError: all elements of input should be between 0 and 1",
    )
    facts = RunFacts(exit_code=1, loss_problem="loss is diverging: 550.4 → 5.283e+10 by step 2", loss_rising=True)
    assert diagnose_text(log, facts=facts).category == "nan_loss"
    assert diagnose_text(log, facts=RunFacts(exit_code=1)).category == "code_error", "no loss problem: a code error"


def test_a_finished_run_with_an_exploded_loss_is_nan_loss():
    d = diagnose_lines(
        ["step 98", "done"], facts=RunFacts(exit_code=0, loss_problem="train/loss is diverging: 4.6 → 15")
    )
    assert (d.category, d.retryable) == ("nan_loss", False)
    assert d.evidence == ["history: train/loss is diverging: 4.6 → 15"]


def test_an_unrelated_crash_beside_a_rising_loss_stays_what_it_is():
    log = tb(("/w/train.py", 3, "f", "x = y[3]"), error="IndexError: list index out of range")
    facts = RunFacts(exit_code=1, loss_problem="loss is diverging: 2 → 5 by step 9", loss_rising=True)
    assert diagnose_text(log, facts=facts).category == "code_error"
