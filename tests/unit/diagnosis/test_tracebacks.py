"""Traceback parsing: chains, workers, torchrun summaries, JAX/TF, prefixes, fences, flattened pastes."""

from __future__ import annotations

from bot.diagnosis import parse_tracebacks
from tests.support.paths import LOGS


def parse(name: str):
    return parse_tracebacks((LOGS / name).read_text().splitlines())


def test_chained_during_handling():
    first, second = parse("oom_chained.log")
    assert (first.exc_type, second.exc_type) == ("torch.OutOfMemoryError", "RuntimeError")
    assert second.chained == "context" and first.chained is None
    assert first.frames == [
        (
            "/home/alice/exp/src/model.py",
            88,
            "forward",
            "attn = torch.softmax(q @ k.transpose(-2, -1) * self.scale, dim=-1)",
        )
    ]
    assert [f[1] for f in second.frames] == [141, 127, 64]


def test_direct_cause_and_remote_traceback():
    worker, main = parse("remote_traceback.log")
    assert worker.kind == "worker" and main.kind == "python"
    assert main.chained == "cause"
    assert worker.message == "'NoneType' object is not subscriptable"
    assert worker.frames[-1][:3] == ("/work/proj/prep.py", 19, "<listcomp>")


def test_dataloader_original_traceback():
    outer, worker = parse("data_worker.log")
    assert outer.message == "Caught FileNotFoundError in DataLoader worker process 2."
    assert worker.kind == "worker" and worker.exc_type == "FileNotFoundError"
    assert len(worker.frames) == 4


def test_torchrun_summary():
    tbs = parse("torchrun_summary.log")
    summary = tbs[-1]
    assert summary.kind == "torchrun"
    assert (summary.exc_type, summary.message) == ("ZeroDivisionError", "division by zero")
    assert summary.details["exitcode"] == "1 (pid: 213)"
    assert summary.details["error_file"].endswith("/1/error.json")
    assert summary.frames[-1][:3] == ("/job/src/train.py", 44, "main")
    assert tbs[-2].exc_type.endswith("ChildFailedError") and tbs[-2].kind == "python"


def test_torchrun_signal_without_traceback():
    lines = [
        "Root Cause (first observed failure):",
        "[0]:",
        "  time      : 2024-01-01_00:00:00",
        "  host      : n1",
        "  rank      : 0 (local_rank: 0)",
        "  exitcode  : -9 (pid: 77)",
        "  error_file: <N/A>",
        "  traceback : Signal 9 (SIGKILL) received by PID 77",
        "=" * 60,
    ]
    (tb,) = parse_tracebacks(lines)
    assert tb.exc_type == "ChildFailedError" and "Signal 9 (SIGKILL)" in tb.message and "-9" in tb.message


def test_jax_and_tf_kinds():
    (jax,) = parse("jax_oom.log")
    assert jax.kind == "jax" and jax.message.startswith("RESOURCE_EXHAUSTED")
    (tf,) = parse("tf_invalid_argument.log")
    assert tf.kind == "tf"
    assert "Incompatible shapes: [32,10] vs. [32,1]" in tf.message


def test_rank_prefixes_are_stripped():
    (tb,) = parse("device_assert.log")
    assert tb.exc_type == "RuntimeError" and tb.message == "CUDA error: device-side assert triggered"
    assert tb.frames[0] == ("/workspace/src/train.py", 98, "<module>", "main()")


def test_markdown_fence_and_bold():
    tbs = parse("disk_full_fenced.log")
    assert [t.exc_type for t in tbs] == ["RuntimeError", "OSError"]
    (tb,) = parse_tracebacks(["**omegaconf.errors.ConfigAttributeError: Missing key lr**"])
    assert tb.message == "Missing key lr"


def test_traceback_flattened_onto_one_line():
    line = (
        'Traceback (most recent call last):   File "run.py", line 3, in <module>     import foo   '
        "File \"/x/foo.py\", line 1, in <module>     from bar import baz ModuleNotFoundError: No module named 'bar'"
    )
    (tb,) = parse_tracebacks([line])
    assert tb.exc_type == "ModuleNotFoundError" and tb.message == "No module named 'bar'"
    assert [f[0] for f in tb.frames] == ["run.py", "/x/foo.py"]


def test_wrapped_frame_path_and_headless_tail():
    lines = [
        '  File "/very/long/pa',
        'th/model.py", line 7, in forward',
        "    return self.fc(x)",
        "RuntimeError: expected scalar type Half but found Float",
    ]
    (tb,) = parse_tracebacks(lines)
    assert tb.frames == [("/very/long/path/model.py", 7, "forward", "return self.fc(x)")]


def test_plain_log_has_no_tracebacks():
    assert parse("no_error.log") == []
    assert parse_tracebacks(["FutureWarning: x is deprecated", "UserWarning: y"]) == []
