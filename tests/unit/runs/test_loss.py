from bot.runs.loss import (
    is_return_key,
    learning_problem,
    loss_key,
    loss_problem,
    loss_rising,
    merge_rows,
    return_improved,
)


def rows(values, key="loss"):
    return [{"_step": i, key: v} for i, v in enumerate(values)]


def test_decreasing_loss_is_sane():
    assert loss_problem(rows([4.0, 2.0, 1.0, 0.5, 0.3, 0.2])) is None


def test_nan_and_inf_as_wandb_writes_them():
    assert loss_problem(rows([1.0, 0.9, "NaN"])) == "loss is nan at step 2"
    assert "inf" in loss_problem(rows([1.0, float("inf")]))
    assert "inf" in loss_problem(rows([1.0, "Infinity"]))


def test_runaway_loss_is_diverging():
    problem = loss_problem(rows([9.0, 144.0, 2304.0, 36864.0, 589824.0, 9437184.0]))
    assert problem.startswith("loss is diverging: 9 → 9.437e+06")


def test_noisy_but_bounded_loss_is_not_diverging():
    assert loss_problem(rows([1.0, 1.2, 0.9, 1.1, 1.3, 1.4, 1.5])) is None


def test_loss_key_prefers_loss_then_any_loss_named_key():
    assert loss_key([{"loss": 1, "val_loss": 2}]) == "loss"
    assert loss_key([{"_step": 0, "mlm_loss": 2}]) == "mlm_loss"
    assert loss_key([{"acc": 1}]) is None
    assert loss_problem([{"acc": 1.0}]) is None


# -- issue 10: a failed run is one whose loss is non-finite or exploded; verified means learning --


def test_an_exploded_loss_is_a_problem_even_after_it_came_down():
    # 4.6 → 446 → 15: the latest value is still over twice where it started
    assert loss_problem(rows([4.6, 446.0, 15.0])) == "loss is diverging: 4.6 → 15 by step 2"
    assert loss_problem(rows([4.6, 9.0])) is None, "below twice the start: not exploded"
    assert learning_problem(rows([4.6, 446.0, 15.0])) is not None


def test_a_fiftyfold_spike_is_a_problem_even_after_the_loss_came_back():
    assert loss_problem(rows([2.21, 13900.0, 339.0, 4.2, 2.69])) == "loss spiked: 2.21 → 1.39e+04 at step 1"
    assert loss_problem(rows([2.21, 221.0, 30.1, 1.3])) == "loss spiked: 2.21 → 221 at step 1"  # lr 2.0
    assert loss_problem(rows([2.21, 60.0, 35.0, 1.9])) is None, "27-fold: judged by where it ended"
    assert loss_problem(rows([-0.5, 80.0, -0.6])) is None, "a first value at or below zero: no scale"


def test_a_negative_loss_explodes_when_it_rises_by_more_than_its_own_size():
    assert loss_problem(rows([-5.0, -4.0, -1.0])) is None
    assert loss_problem(rows([-5.0, -2.0, 0.5])) is not None


def test_a_zero_first_value_is_no_scale_to_judge_by():
    assert loss_problem(rows([0.0, 3.0, 2.0])) is None


def test_learning_means_not_running_away_at_the_end():
    assert learning_problem(rows([4.0, 3.0, 2.0, 1.9, 1.8])) is None
    problem = learning_problem(rows([4.0, 3.0, 2.0, 2.1, 2.3, 2.6, 2.9]))
    assert problem is not None and problem.startswith("loss is rising: 2 → 2.9")
    # noise at a plateau is not a runaway: rising three times but within 20% of the lowest
    assert learning_problem(rows([4.0, 3.0, 2.0, 2.01, 2.05, 2.1, 2.2])) is None
    assert loss_problem(rows([4.0, 3.0, 2.0, 2.1, 2.3, 2.6, 2.9])) is None, "rising is not failed"


def test_the_metric_names_real_repos_use():
    assert loss_key([{"train/loss": 1.0, "val/loss": 2.0}]) == "train/loss"
    assert loss_key([{"train_loss": 1.0, "eval_loss": 2.0}]) == "train_loss"
    # cleanrl: losses/* are parts of PPO's objective (the value loss grows with the returns)
    assert loss_key([{"losses/value_loss": 1.0, "losses/policy_loss": -0.01, "charts/episodic_return": 9}]) is None
    assert loss_key([{"val_loss": 1.0}]) is None
    assert loss_key([{"train/mlm_loss": 1.0, "test/mlm_loss": 1.0}]) == "train/mlm_loss"


def test_returns_are_not_judged_as_losses_but_must_be_finite():
    rising_return = [{"_step": i, "charts/episodic_return": v} for i, v in enumerate([9.0, 20.0, 40.0, 80.0, 160.0])]
    assert loss_problem(rising_return) is None and learning_problem(rising_return) is None
    assert is_return_key("charts/episodic_return") and not is_return_key("train/loss")
    broken = rising_return + [{"_step": 5, "charts/episodic_return": "NaN"}]
    assert loss_problem(broken) == "charts/episodic_return is nan at step 5"
    value_loss = [{"_step": i, "losses/value_loss": v} for i, v in enumerate([1.0, 5.0, 30.0, 90.0])]
    assert loss_problem(value_loss) is None, "a growing value loss is how PPO learns"


def test_a_policy_loss_growing_with_a_rising_return_is_learning_and_with_a_falling_one_is_not():
    # REINFORCE on CartPole (pytorch/examples): the summed loss grows as episodes lengthen.
    losses = [0.147, 0.3, 0.5, 0.8, 1.2, 1.85]
    learning = [
        {"_step": i, "loss": v, "episode_return": r}
        for i, (v, r) in enumerate(zip(losses, [9, 12, 15, 24, 40, 61], strict=True))
    ]
    assert return_improved(learning)
    assert loss_problem(learning) is None and learning_problem(learning) is None

    collapsing = [{**row, "episode_return": r} for row, r in zip(learning, [40, 30, 22, 15, 11, 9], strict=True)]
    assert not return_improved(collapsing)
    assert loss_problem(collapsing).startswith("loss is diverging")
    assert loss_problem(learning + [{"_step": 6, "loss": "NaN", "episode_return": 70}]) == "loss is nan at step 6"


def test_first_rows_and_last_rows_merge_in_step_order():
    head = rows([4.6, 446.0])
    tail = [{"_step": 40, "loss": 12.0}, {"_step": 41, "loss": 15.0}]
    merged = merge_rows(head, tail, [{"_step": 1, "loss": 446.0}])
    assert [r["_step"] for r in merged] == [0, 1, 40, 41]
    assert loss_problem(merged) == "loss is diverging: 4.6 → 15 by step 41"


def test_a_rising_loss_is_evidence_even_below_the_failure_line():
    assert loss_rising(rows([2.0, 2.5])) and loss_rising(rows([3.0, 1.0, 1.1, 1.2, 1.3]))
    assert not loss_rising(rows([3.0, 2.0, 1.5])) and not loss_rising([{"acc": 1.0}])
