"""The loss a job prints: read from real trainers' console lines, judged like a logged loss."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.runs import console_loss
from bot.runs.console_loss import HEAD_ROWS, TAIL_ROWS, ConsoleLoss, losses_in_line, printed_losses
from bot.runs.loss import printed_loss_problem

NAN = float("nan")

# timm's train.py at lr 20: W&B gets one train_loss an epoch (6250, 19.3, 9.3), the console
# shows the explosion within the first epoch.
TIMM_DIVERGING = """\
Train: 0 [   0/15 (  7%)]  Loss: 2.21 (2.21)  Time: 2.576s,   12.42/s  (2.576s,   12.42/s)  LR: 2.000e+01  Data: 0.355 (0.355)
Train: 0 [   5/15 ( 40%)]  Loss: 1.40e+04 (1.24e+04)  Time: 1.744s,   18.35/s  (2.340s,   13.67/s)  LR: 2.000e+01
Train: 0 [  10/15 ( 73%)]  Loss: 196. (8.50e+03)  Time: 2.892s,   11.07/s  (2.759s,   11.60/s)  LR: 2.000e+01
Test: [   0/1]  Time: 1.097 (1.097)  Loss:   6.241 ( 6.241)  Acc@1:   0.000 (  0.000)  Acc@5:  40.000 ( 40.000)
Train: 1 [  14/15 (100%)]  Loss: 37.7 (6.25e+03)  Time: 2.393s,   13.37/s  (2.681s,   11.93/s)  LR: 1.500e+01
{
    "train": {
            "loss": 6249.69125494957
    },
    "validation": {
            "loss": 27.587965488433838,
"""


@pytest.mark.parametrize(
    "line, expected",
    [
        ("step 10 | loss 3084.9885 | step time 1779.97ms", {"loss": 3084.9885}),  # makemore
        ("iter 100: loss 4.2310, time 52.31ms, mfu 1.20%", {"loss": 4.231}),  # nanoGPT
        ("step 0: train loss 10.9876, val loss 10.9814", {"loss": 10.9876}),  # nanoGPT's evaluation step
        ("{'loss': 2.3021, 'grad_norm': 1.52, 'learning_rate': 5e-05, 'epoch': 0.1}", {"loss": 2.3021}),  # HF
        ("Epoch 0:  50%|█████     | 8/16 [00:01<00:01, 5.06it/s, v_num=0, train/loss=nan]", {"train/loss": NAN}),
        ("step 500 train loss: 2.2104 test loss: 2.3390", {"loss": 2.2104}),
        ("Train: 0 [   5/15 ( 40%)]  Loss: 1.40e+04 (1.24e+04)", {"loss": 1.4e4}),  # timm
        ("1875/1875 [====] - 3s 1ms/step - loss: 0.2950 - accuracy: 0.91 - val_loss: 0.1388", {"loss": 0.295}),
        ('{"epoch": 1, "train_loss": "4.213", "train_ppl": "18.5"}', {"train_loss": 4.213}),  # fairseq's JSON
        (
            "it 20 kl_loss 0.01 recon_loss 2.5 loss tensor(2.51, grad_fn=<AddBackward0>)",
            {"kl_loss": 0.01, "recon_loss": 2.5, "loss": 2.51},
        ),
        ("loss: 2.3", {"loss": 2.3}),  # a bare print
    ],
)
def test_a_printed_training_loss_is_read(line, expected):
    found = losses_in_line(line)
    assert found.keys() == expected.keys()
    assert all(found[k] == v or (found[k] != found[k] and v != v) for k, v in expected.items())


@pytest.mark.parametrize(
    "line",
    [
        "Test: [   0/1]  Time: 1.097 (1.097)  Loss:   6.241 ( 6.241)  Acc@1:   0.000",  # timm's evaluation
        "epoch 3 val_loss 0.412 val_acc 0.91",
        "│ 12 │ criterion    │ CrossEntropyLoss   │      0 │ train │     0 │",  # a model summary
        '            "loss": 27.587965488433838,',  # a dump of train and eval metrics
        "  loss: 0.5",  # a YAML dump of a config
        "wandb: 4 of 4 files uploaded, lossless",
        "[deepspeed] OVERFLOW! Skipping step. Attempted loss scale: 65536, reducing to 32768",
        "Gradient overflow. Skipping step, loss scaler 0 reducing loss scale to 16384.0",
    ],
)
def test_what_is_not_a_training_loss_is_left_out(line):
    assert losses_in_line(line) == {}


def test_a_tracebacks_source_lines_are_code_not_output():
    log = """step 0 | loss 3.5
Traceback (most recent call last):
  File "train.py", line 40, in <module>
    loss = 0.5 * mse + 9.0 * kl
RuntimeError: boom
"""
    assert list(printed_losses(log)) == [{"loss": 3.5}]


def test_a_loss_that_exploded_between_logged_epochs_shows_on_the_console(tmp_path):
    log = tmp_path / "output.log"
    log.write_text(TIMM_DIVERGING)
    rows = ConsoleLoss().rows(log)
    assert [row["loss"] for row in rows] == [2.21, 1.4e4, 196.0, 37.7]
    assert printed_loss_problem(rows) == "printed loss is diverging: 2.21 → 37.7"


def test_an_early_spike_is_not_yet_an_explosion(tmp_path):
    """timm at a learning rate of 0.2: a spike on its second print, then it learns; at 2.0 the
    spike lasts (175, 35, 8.63 over its first epoch) and is an explosion."""
    log = tmp_path / "output.log"
    log.write_text("Loss: 2.21 (2.21)\nLoss: 3.27 (2.74)\n")
    assert printed_loss_problem(ConsoleLoss().rows(log)) is None
    log.write_text("".join(f"Loss: {v} ({v})\n" for v in [2.21, 175.0, 35.0, 8.63]))
    assert printed_loss_problem(ConsoleLoss().rows(log)) == "printed loss is diverging: 2.21 → 8.63"


def test_a_fiftyfold_spike_is_a_failed_run_whatever_came_after(tmp_path):
    """timm at lr 20 on another CPU: the loss spiked 6,000-fold in its first epoch, then came back
    near its start (validation at chance accuracy): the run diverged. Up to fiftyfold it is judged
    by where the loss ended, as before (timm at lr 0.2 spikes 1.5-fold, then learns)."""
    log = tmp_path / "output.log"
    spiked = [2.21, 1.39e4, 339.0, 29.9, 22.0, 15.1, 13.5, 5.94, 5.37, 4.91, 4.91, 2.69]
    log.write_text("".join(f"Train: 0 [ {i}/15]  Loss: {v} ({v})\n" for i, v in enumerate(spiked)))
    assert printed_loss_problem(ConsoleLoss().rows(log)) == "printed loss spiked: 2.21 → 1.39e+04"
    log.write_text("".join(f"Loss: {v} ({v})\n" for v in [2.21, 60.0, 35.0, 4.0, 2.0, 1.9]))
    assert printed_loss_problem(ConsoleLoss().rows(log)) is None


def test_a_printed_nan_is_a_failed_run(tmp_path):
    log = tmp_path / "output.log"
    log.write_text("step 0 | loss 3.5\rstep 10 | loss nan\n")
    assert printed_loss_problem(ConsoleLoss().rows(log)) == "printed loss is nan"


def test_one_noisy_batch_is_not_an_explosion(tmp_path):
    """A batch's loss jumps about; exploded means each of the last three values is above twice
    where the loss started."""
    log = tmp_path / "output.log"
    log.write_text("".join(f"step {i} | loss {v}\n" for i, v in enumerate([0.5, 0.45, 1.3, 0.4, 1.2, 0.42])))
    assert printed_loss_problem(ConsoleLoss().rows(log)) is None
    with open(log, "a") as out:
        out.write("step 6 | loss 1.1\nstep 7 | loss 1.3\nstep 8 | loss 1.5\n")
    assert printed_loss_problem(ConsoleLoss().rows(log)) == "printed loss is diverging: 0.5 → 1.5"


def test_the_log_is_read_incrementally_keeping_its_first_and_last_rows(tmp_path):
    log = tmp_path / "output.log"
    console = ConsoleLoss()
    log.write_text("".join(f"step {i} | loss {10 - i / 100:.3f}\n" for i in range(200)) + "step 200 | lo")
    rows = console.rows(log)
    assert len(rows) == HEAD_ROWS + TAIL_ROWS
    assert [r["_step"] for r in rows[:HEAD_ROWS]] == [0, 1, 2] and rows[-1]["_step"] == 199
    for value in ("ss 1e9\n", "step 201 | loss 2e9\n", "step 202 | loss 3e9\n"):
        with open(log, "a") as out:
            out.write(value)  # the line being written is read once whole
        rows = console.rows(log)
    assert [r["loss"] for r in rows[-3:]] == [1e9, 2e9, 3e9] and rows[-3]["_step"] == 200
    assert "diverging: 10 → 3e+09" in printed_loss_problem(rows)


def test_a_long_log_is_read_at_its_start_and_its_end(tmp_path, monkeypatch):
    monkeypatch.setattr(console_loss, "WINDOW", 1024)
    log = tmp_path / "output.log"
    log.write_text("".join(f"step {i} | loss {3 + i / 1000:.4f}\n" for i in range(2000)))  # ~50 KB
    rows = ConsoleLoss().rows(log)
    assert [r["loss"] for r in rows[:HEAD_ROWS]] == [3.0, 3.001, 3.002]
    assert rows[-1]["loss"] == 4.999 and len(rows) <= HEAD_ROWS + TAIL_ROWS


def test_a_log_started_afresh_is_read_afresh(tmp_path):
    log = tmp_path / "output.log"
    console = ConsoleLoss()
    log.write_text("step 0 | loss 3.5\nstep 1 | loss 3.4\nstep 2 | loss 3.3\nstep 3 | loss 3.2\n")
    console.rows(log)
    log.write_text("step 0 | loss 9.0\n")
    assert console.rows(log) == [{"_step": 0, "loss": 9.0}]


def test_a_healthy_run_and_a_missing_log_have_no_problem(tmp_path):
    log = tmp_path / "output.log"
    log.write_text("step 0 | loss 3.5123\nstep 10 | loss 2.8934\nstep 20 | loss 2.8347\n")
    assert printed_loss_problem(ConsoleLoss().rows(log)) is None
    assert ConsoleLoss().rows(Path(tmp_path / "absent.log")) == []
