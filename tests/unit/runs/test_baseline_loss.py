"""The verdict against a baseline (bot.runs.loss.baseline_problem): a finite loss that falls may
still be far worse than the base branch's run at the same point; a legitimately different
experiment is not."""

from bot.runs.loss import BASELINE_FACTOR, baseline_problem, baseline_stall, comparable

# lightning-hydra-template, measured (torch CPU, seed 12345): train/loss is one epoch mean a row,
# beside val rows, at trainer/global_step 15, 31, 47.
MAIN = [1.567, 0.6162, 0.2278]  # lr 0.002
HOT = [1341.6, 22.795, 9.5109]  # lr 20
TENTH = [16.504, 2.7171, 2.4031]  # lr 2.0: chance-level accuracy (0.13)
HUNDREDTH = [1.7867, 0.4497, 0.1864]  # lr 0.2: learns


def epochs(values, key="train/loss"):
    """Lightning's rows: a val row, then the train row, each epoch."""
    rows = []
    for epoch, value in enumerate(values):
        step = 15 + 16 * epoch
        rows.append({"_step": 2 * epoch, "epoch": epoch, "trainer/global_step": step, "val/loss": 1.0})
        rows.append({"_step": 2 * epoch + 1, "epoch": epoch, "trainer/global_step": step, key: value})
    return rows


def steps(values, key="loss", start=0):
    return [{"_step": start + i, key: v} for i, v in enumerate(values)]


def test_an_epoch_mean_loss_that_falls_but_stays_far_worse_than_main_diverged():
    problem = baseline_problem(epochs(HOT), epochs(MAIN), "main's run m1")
    assert problem == "train/loss 9.51 at step 47 against 0.228 on main's run m1"
    assert baseline_problem(epochs(TENTH), epochs(MAIN), "main's run m1") is not None


def test_a_run_that_learns_like_main_is_not_flagged():
    assert baseline_problem(epochs(HUNDREDTH), epochs(MAIN), "main") is None
    assert baseline_problem(epochs(MAIN), epochs(MAIN), "main") is None


def test_just_under_the_factor_is_not_flagged_just_over_is():
    base = [2.3, 1.0, 0.5, 0.2]
    under = [2.3, 5.0, 4.0, 0.2 * BASELINE_FACTOR * 0.99]
    over = [2.3, 5.0, 4.0, 0.2 * BASELINE_FACTOR * 1.01]
    assert baseline_problem(steps(under), steps(base), "main") is None
    assert baseline_problem(steps(over), steps(base), "main") is not None


def test_a_loss_on_another_scale_keeps_its_ratio_and_is_not_flagged():
    base = [2.3, 1.2, 0.6, 0.3, 0.2]
    summed = [64 * v for v in base]  # reduction="sum" over a batch of 64, same optimiser path
    assert baseline_problem(steps(summed), steps(base), "main") is None
    slower = [10 * v * f for v, f in zip(base, [1.0, 1.2, 1.4, 1.6, 1.9], strict=True)]  # and learning slower
    assert baseline_problem(steps(slower), steps(base), "main") is None


def test_label_smoothing_against_a_baseline_that_memorised_is_a_higher_floor_not_a_divergence():
    base = [2.3, 0.5, 0.05, 0.01]
    smoothed = [2.3, 0.9, 0.55, 0.5]  # 50x the baseline at the end, far below where it started
    assert baseline_problem(steps(smoothed), steps(base), "main") is None


def test_a_larger_model_or_a_slow_start_is_not_flagged():
    base = [2.3, 1.0, 0.5, 0.3, 0.2]
    assert baseline_problem(steps([2.3, 2.0, 1.5, 1.0, 0.7]), steps(base), "main") is None
    catching_up = [2.3, 30.0, 25.0, 8.0, 2.5]  # ratios 1, 30, 50, 27, 12.5: more than halved at the end
    assert baseline_problem(steps(catching_up), steps(base), "main") is None


def test_a_run_that_recovered_after_its_last_comparable_point_is_not_flagged():
    base = [2.3, 1.0, 0.5]
    run = [2.3, 20.0, 9.0, 3.0, 0.6]  # steps 3, 4: the baseline has none there (it ended)
    assert baseline_problem(steps(run), steps(base), "main") is None
    assert baseline_problem(steps(run[:3] + [8.5]), steps(base), "main") is not None


def test_one_common_point_tells_no_trend_so_no_verdict():
    assert baseline_problem(epochs(HOT[:1]), epochs(MAIN[:1]), "main") is None


def test_no_baseline_loss_or_no_common_point_means_no_comparison():
    assert baseline_problem(epochs(HOT), [{"_step": 0, "acc": 0.5}], "main") is None
    assert baseline_problem(epochs(HOT, key="loss"), epochs(MAIN), "main") is None, "another loss key"
    # logged at steps the baseline never logged at (another unit): not compared, not guessed
    run = [{"step": 1000 * i, "_step": i, "loss": v} for i, v in enumerate([2.3, 40.0, 30.0])]
    base = [{"step": i, "_step": i, "loss": v} for i, v in enumerate([2.3, 1.0, 0.5])]
    assert comparable(run, base, "loss") == [("step", 0.0, 2.3, 2.3)]
    assert baseline_problem(run, base, "main") is None


def test_points_are_matched_by_training_step_then_epoch_then_row():
    base = epochs(MAIN)
    run = [{**row, "_step": row["_step"] + 10} for row in epochs(HOT)]  # logs more rows than main
    assert [p[1] for p in comparable(run, base, "train/loss")] == [15.0, 31.0, 47.0]
    no_global = [{k: v for k, v in row.items() if k != "trainer/global_step"} for row in run]
    base_no_global = [{k: v for k, v in row.items() if k != "trainer/global_step"} for row in base]
    assert [p[:2] for p in comparable(no_global, base_no_global, "train/loss")] == [
        ("epoch", 0.0),
        ("epoch", 1.0),
        ("epoch", 2.0),
    ]
    # a loss logged many times an epoch: an epoch is no one point, W&B's row is
    per_step = [{"_step": i, "epoch": i // 4, "loss": v} for i, v in enumerate([2.3] * 8)]
    assert [p[:2] for p in comparable(per_step, per_step, "loss")][:2] == [("step", 0.0), ("step", 1.0)]


def test_non_finite_or_non_positive_values_are_not_compared():
    base = steps([2.3, 0.0, -1.0, 0.5])
    run = steps([2.3, 30.0, 30.0, "NaN"])
    assert comparable(run, base, "loss") == [("step", 0.0, 2.3, 2.3)]
    assert baseline_problem(run, base, "main") is None


# pytorch/examples, measured (every other print or so): printed losses at the same print of main's run and of a relaunch
# whose learning rate was still 100x too high (mnist) or whose loss blew up before its first print
# (word_language_model). Neither is 10x main's: baseline_problem lets them pass.
MNIST_MAIN = [2.32, 2.3, 2.16, 2.15, 1.9, 1.76, 1.82, 1.61, 1.12, 1.63, 0.75, 0.58, 0.87, 0.31, 0.26, 0.29]
MNIST_HOT = [2.32, 4.1, 2.3, 2.33, 2.3, 2.37, 2.3, 2.36, 2.33, 2.31, 2.35, 2.34, 2.33, 2.37, 2.32, 2.31]
LM_MAIN = [4.53, 4.11, 3.59, 2.74, 2.39, 2.21, 2.11, 2.07, 2.04, 2.27, 1.97, 2.02, 2.01]
LM_HOT = [15.68, 27.32, 29.1, 24.94, 17.86, 13.13, 10.06, 8.13, 9.69, 7.4, 8.46, 8.77, 8.27]


def test_a_relaunch_no_better_than_untrained_beside_a_baseline_that_learnt_stalled():
    assert baseline_problem(steps(MNIST_HOT), steps(MNIST_MAIN), "main") is None
    assert baseline_stall(steps(MNIST_HOT), steps(MNIST_MAIN), "main's run m1") == (
        "loss 2.31 at step 15 is no better than untrained: main's run m1 fell from 2.32 to 0.29 by then"
    )
    assert baseline_problem(steps(LM_HOT), steps(LM_MAIN), "main") is None
    assert baseline_stall(steps(LM_HOT), steps(LM_MAIN), "main") is not None


def test_a_relaunch_that_learns_or_is_catching_up_has_not_stalled():
    assert baseline_stall(steps(MNIST_MAIN), steps(MNIST_MAIN), "main") is None
    slower = [2.32, 2.31, 2.3, 2.25, 2.1, 2.0, 1.9, 1.8, 1.7, 1.6, 1.5, 1.4, 1.3, 1.25, 1.2, 1.1]  # a tenth the lr
    assert baseline_stall(steps(slower), steps(MNIST_MAIN), "main") is None
    catching_up = [2.3, 30.0, 25.0, 8.0, 2.5]
    assert baseline_stall(steps(catching_up), steps([2.3, 1.0, 0.5, 0.3, 0.2]), "main") is None
    assert baseline_stall(steps([2.3, 30.0, 25.0, 8.0, 7.9]), steps([2.3, 1.0, 0.5, 0.3, 0.2]), "main") is not None


def test_no_stall_before_the_baseline_learnt_or_with_too_few_points():
    early = [2.32, 2.3, 2.16, 2.15, 1.9]  # main has not halved its loss yet
    assert baseline_stall(steps(MNIST_HOT[:5]), steps(early), "main") is None
    assert baseline_stall(steps([2.3, 2.3]), steps([2.3, 0.2]), "main") is None
