"""Diagnosis of hand-written logs: category, retryable, exception, location, evidence, summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.diagnosis import CATEGORIES, diagnose_lines, diagnose_text
from tests.support.paths import LOGS


def diagnose_log(name: str, **kwargs):
    return diagnose_text((LOGS / name).read_text(), **kwargs)


@pytest.mark.parametrize(
    "name, category, retryable",
    [
        ("oom_chained.log", "oom", False),
        ("nan_check.log", "nan_loss", False),
        ("import_missing.log", "import_error", False),
        ("data_worker.log", "data_not_found", False),
        ("config_args.log", "config_error", False),
        ("shape_mismatch.log", "shape_error", False),
        ("device_assert.log", "device_error", False),
        ("nccl_timeout.log", "distributed", True),
        ("preempted.log", "infra", True),
        ("disk_full_fenced.log", "infra", True),
        ("torchrun_summary.log", "code_error", False),
        ("remote_traceback.log", "code_error", False),
        ("jax_oom.log", "oom", False),
        ("tf_invalid_argument.log", "shape_error", False),
        ("no_error.log", "unknown", False),
    ],
)
def test_category_and_retryable(name, category, retryable):
    d = diagnose_log(name)
    assert (d.category, d.retryable) == (category, retryable)
    assert d.category in CATEGORIES
    assert d.summary and "\n" not in d.summary


def test_oom_inside_chained_traceback_beats_the_wrapper():
    d = diagnose_log("oom_chained.log")
    assert d.exception["type"] == "torch.OutOfMemoryError"
    assert d.location == {"file": "/home/alice/exp/src/model.py", "line": 88, "function": "forward"}
    assert any("CUDA out of memory" in line for line in d.evidence)
    assert d.summary.startswith("Out of memory")


def test_nan_exception_and_location():
    d = diagnose_log("nan_check.log")
    assert d.exception == {"type": "FloatingPointError", "message": "Loss is NaN at step 131"}
    assert d.location == {"file": "src/train.py", "line": 27, "function": "train"}
    assert "loss=nan" in " ".join(d.evidence)


def test_worker_traceback_gives_the_original_error_and_frame():
    d = diagnose_log("data_worker.log")
    assert d.exception["message"].startswith("[Errno 2] No such file or directory")
    assert d.location == {"file": "/srv/run/src/data.py", "line": 34, "function": "__getitem__"}


def test_torchrun_root_cause_replaces_the_childfailederror_wrapper():
    d = diagnose_log("torchrun_summary.log")
    assert d.exception == {"type": "ZeroDivisionError", "message": "division by zero"}
    assert d.location == {"file": "/job/src/train.py", "line": 44, "function": "main"}


def test_torchrun_without_root_cause_is_distributed():
    lines = (LOGS / "torchrun_summary.log").read_text().split("Root Cause")[0].splitlines()
    d = diagnose_lines(lines)
    assert d.category == "distributed"
    assert d.exception["type"].endswith("ChildFailedError")


def test_preemption_notice_beats_keyboardinterrupt():
    d = diagnose_log("preempted.log")
    assert d.exception["type"] == "KeyboardInterrupt"
    assert "PREEMPTION" in d.summary


def test_tf_summary_uses_the_detail_under_a_heading_message():
    d = diagnose_log("tf_invalid_argument.log")
    assert "Incompatible shapes" in d.summary
    assert d.exception["type"].endswith("InvalidArgumentError")


def test_history_nan_without_an_exception():
    history = [{"_step": 9, "loss": 0.7}, {"_step": 10, "loss": float("nan")}]
    d = diagnose_log("no_error.log", history=history)
    assert d.category == "nan_loss"
    assert d.evidence == ["history step 10: loss=nan"]
    assert diagnose_log("no_error.log", history=[{"_step": 10, "train/loss": 0.5}]).category == "unknown"


def test_history_inf_as_string():
    d = diagnose_lines([], history=[{"step": 3, "train/loss": "Infinity"}])
    assert d.category == "nan_loss"


def test_exception_with_no_rule_is_code_error():
    d = diagnose_lines(
        [
            "Traceback (most recent call last):",
            '  File "a.py", line 3, in f',
            "    x = y[3]",
            "IndexError: list index out of range",
        ]
    )
    assert d.category == "code_error"
    assert d.exception == {"type": "IndexError", "message": "list index out of range"}
    assert d.location == {"file": "a.py", "line": 3, "function": "f"}


def test_evidence_and_summary_are_redacted():
    d = diagnose_log("secrets.log", extra_secrets=["alice"])
    text = " ".join(d.evidence) + d.summary + str(d.exception)
    assert "hf_AbCd" not in text and "alice" not in text
    assert "[REDACTED]" in d.summary


def test_json_contract():
    assert set(diagnose_log("nan_check.log").to_json()) == {
        "category",
        "retryable",
        "exception",
        "location",
        "evidence",
        "summary",
    }


# --- location relative to the repo --------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text("")
    (tmp_path / "src" / "model.py").write_text("")
    return tmp_path


def _tb(*frames: str) -> list[str]:
    lines = ["Traceback (most recent call last):"]
    for f in frames:
        lines += [f'  File "{f}", line 5, in step', "    do()"]
    return lines + ["ValueError: bad"]


def test_location_under_repo_root(repo):
    d = diagnose_lines(
        _tb(f"{repo}/src/train.py", f"{repo}/src/model.py", "/usr/lib/python3.11/site-packages/torch/nn/module.py"),
        repo_root=repo,
    )
    assert d.location == {"file": "src/model.py", "line": 5, "function": "step"}


def test_location_relative_path_that_exists(repo):
    d = diagnose_lines(_tb("src/train.py", "helpers/other.py"), repo_root=repo)
    assert d.location["file"] == "src/train.py"


def test_location_from_another_machine_matches_by_suffix(repo):
    d = diagnose_lines(_tb("/home/bob/checkout/src/model.py", "/home/bob/checkout/lib/extra.py"), repo_root=repo)
    assert d.location["file"] == "src/model.py"


def test_location_without_repo_skips_libraries():
    d = diagnose_lines(
        _tb(
            "/w/train.py",
            "<frozen importlib._bootstrap>",
            "/opt/conda/lib/python3.10/site-packages/x.py",
            "C:\\Py\\Lib\\site-packages\\y.py",
        )
    )
    assert d.location["file"] == "/w/train.py"


@pytest.mark.parametrize(
    "text, category",
    [
        ("RuntimeError: CUDA error: out of memory", "oom"),
        (
            "slurmstepd: error: Detected 1 oom_kill event in StepId=123.batch. Some of the step tasks have been OOM Killed.",
            "oom",
        ),
        (
            "RuntimeError: [enforce fail at alloc_cpu.cpp:114] data. DefaultCPUAllocator: not enough memory: "
            "you tried to allocate 1073741824 bytes.",
            "oom",
        ),
        (
            "RuntimeError: NCCL error in: ../torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp:1269, unhandled cuda error",
            "distributed",
        ),
        ("torch.distributed.DistStoreError: Socket Timeout", "distributed"),
        (
            "RuntimeError: Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu!",
            "device_error",
        ),
        ("RuntimeError: CUDA error: uncorrectable ECC error encountered", "infra"),
        ("ValueError: num_samples should be a positive integer value, but got num_samples=0", "data_not_found"),
        ("OSError: We couldn't connect to 'https://huggingface.co' to load this file", "infra"),
        ("RuntimeError: DataLoader worker (pid(s) 1234, 1235) exited unexpectedly", "infra"),
        ("hydra.errors.MissingConfigException: Cannot find primary config 'train'.", "config_error"),
        ("FileNotFoundError: [Errno 2] No such file or directory: 'configs/train.yaml'", "config_error"),
        ("yaml.scanner.ScannerError: mapping values are not allowed here", "config_error"),
        ("ValueError: The loss returned in `training_step` is nan", "nan_loss"),
        ("AttributeError: module 'numpy' has no attribute 'int'", "import_error"),
        (
            "RuntimeError: Given groups=1, weight of size [64, 3, 7, 7], expected input[8, 1, 224, 224] to have 3 channels, "
            "but got 1 channels instead",
            "shape_error",
        ),
        # normalisation and recurrent layers built for other sizes than they are fed (pytorch/examples'
        # mnist_rnn with a wider LSTM, time_sequence_prediction with a wider second LSTMCell)
        ("RuntimeError: running_mean should contain 128 elements not 64", "shape_error"),
        (
            "RuntimeError: Expected weight to be a vector of size equal to the number of channels in input, "
            "but got weight of shape [64] and input of shape [32, 128]",
            "shape_error",
        ),
        ("RuntimeError: input.size(-1) must be equal to input_size. Expected 28, got 32", "shape_error"),
        ("RuntimeError: Expected hidden[0] size (1, 64, 51), got [1, 64, 64]", "shape_error"),
        ("RuntimeError: hidden0 has inconsistent hidden_size: got 51, expected 64", "shape_error"),
        ("RuntimeError: input has inconsistent input_size: got 32 expected 28", "shape_error"),
        ("RuntimeError: Input batch size 64 doesn't match hidden0 batch size 32", "shape_error"),
        ("Setting up SIGTERM handler\nstep 1 loss 0.3", "unknown"),
        # torchrun's SIGTERM to the surviving ranks is not a preemption
        (
            "Sending process 1 closing signal SIGTERM\nRuntimeError: mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)",
            "shape_error",
        ),
    ],
)
def test_one_line_signals(text, category):
    assert diagnose_text(text).category == category
