from bot.runs.loss import loss_key, loss_problem


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
