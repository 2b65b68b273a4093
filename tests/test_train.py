"""The training recipe: options, augmentation, weight averaging, run folders."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import barenet as bn
from barenet import architectures, plots, train
from barenet.augment import ImageAugment
from barenet.errors import ArgumentError
from barenet.io import load_model
from barenet.train import TrainOptions, WeightAverage, count_params, random_shift, run


def test_random_shift_moves_each_image_by_at_most_k_pixels():
    rng = np.random.default_rng(0)
    x = np.zeros((200, 28, 28), np.float32)
    x[:, 13, 13] = 1.0  # one bright pixel in the middle of every image
    out = random_shift(2)(x.copy(), rng)
    assert out.shape == x.shape and out.dtype == x.dtype
    where = np.argwhere(out == 1.0)
    assert len(where) == 200  # nothing lost or duplicated
    moves = where[:, 1:] - 13
    assert np.abs(moves).max() == 2
    assert len({tuple(m) for m in moves}) == 25  # every offset in [-2, 2]^2 is used


def test_random_shift_is_seeded():
    x = np.random.default_rng(1).random((50, 28, 28)).astype(np.float32)
    a = random_shift(1)(x, np.random.default_rng(7))
    b = random_shift(1)(x, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, x)


def test_weight_average_keeps_the_mean_of_the_last_epochs():
    model = architectures.mlp((3,), dropout=0, input_shape=(2,), num_classes=2, seed=0)
    avg = WeightAverage(2, total_epochs=3)
    avg.model = model
    seen = []
    for epoch in range(3):
        model.set_weights(np.full(model.num_params, float(epoch + 1), np.float32))
        seen.append(model.get_weights())
        avg.on_epoch_end(epoch, {})
    avg.on_train_end({})
    np.testing.assert_allclose(model.get_weights(), (seen[1] + seen[2]) / 2)


def test_weight_average_averages_batchnorm_statistics_with_the_weights():
    """The averaged weights kept the last epoch's running statistics, which belong to
    other weights."""
    model = architectures.cnn((2,), (3,), dropout=0, input_shape=(4, 4), seed=0)
    norm = next(layer for layer in model.layers if isinstance(layer, bn.BatchNorm))
    avg = WeightAverage(2, total_epochs=3)
    avg.model = model
    means = []
    for epoch in range(3):
        norm.running_mean[...] = epoch + 1.0
        norm.running_var[...] = 2.0 * (epoch + 1)
        means.append(norm.running_mean.copy())
        avg.on_epoch_end(epoch, {})
    avg.on_train_end({})
    np.testing.assert_allclose(norm.running_mean, (means[1] + means[2]) / 2)
    np.testing.assert_allclose(norm.running_var, 5.0)


def test_mlp_builder_shapes_and_errors():
    model = architectures.mlp((32, 16), dropout=0.1, seed=3)
    assert model.num_params == 784 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10
    assert model.predict_proba(np.zeros((4, 28, 28), np.float32)).shape == (4, 10)
    again = architectures.build("mlp", hidden=(32, 16), dropout=0.1, seed=3)
    np.testing.assert_array_equal(model.get_weights(), again.get_weights())
    with pytest.raises(ArgumentError, match="hidden"):
        architectures.mlp((32, 0))
    with pytest.raises(ArgumentError, match="model must be one of"):
        architectures.build("transformer")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dataset": "svhn"}, "svhn"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"lr": 0.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"val_split": 1.5}, "val_split"),
        ({"val_split": -0.1}, "val_split"),
        ({"average_last": 5, "epochs": 3}, "average_last"),
        ({"hidden": ()}, "hidden"),
        ({"momentum": 1.0}, "momentum"),
        ({"limit": 1}, "limit"),
    ],
)
def test_bad_options_name_themselves(change, message):
    with pytest.raises(ArgumentError, match=message):
        TrainOptions(**change).check()


def test_weight_decay_only_where_the_optimizer_has_it(tmp_path, mnist):
    options = TrainOptions(optimizer="rmsprop", weight_decay=1e-4, limit=500, epochs=1)
    with pytest.raises(ArgumentError, match="weight_decay"):
        run(options, tmp_path, verbose=0, log=lambda line: None)


def test_validation_that_leaves_nothing_to_train_is_refused(tmp_path, mnist):
    with pytest.raises(ArgumentError, match="val_split=600"):
        run(TrainOptions(limit=500, val_split=600), tmp_path, verbose=0)


def test_val_split_0_trains_on_every_training_image(tmp_path, mnist):
    lines: list[str] = []
    options = TrainOptions(hidden=(32,), epochs=5, limit=600, val_split=0, lr=0.003)
    result = run(options, tmp_path, verbose=0, log=lines.append)
    assert "600 training, 0 validation" in lines[0]
    assert result.val_accuracy is None and result.test_accuracy > 0.3
    record = json.loads((tmp_path / "history.json").read_text())
    assert record["val_accuracy"] is None and "val_accuracy" not in record["history"]
    assert load_model(tmp_path / "model.npz").metadata["val_accuracy"] is None
    assert "| validation accuracy | - |" in (tmp_path / "report.md").read_text()


def test_same_seed_same_network_and_no_pictures_without_matplotlib(tmp_path, monkeypatch, fashion):
    monkeypatch.setattr(plots, "available", lambda: False)
    options = TrainOptions(
        dataset="fashion", hidden=(32,), epochs=2, limit=3000, shift=1, average_last=2, seed=4
    )
    a = run(options, tmp_path / "a", verbose=0, log=lambda line: None)
    b = run(options, tmp_path / "b", verbose=0, log=lambda line: None)
    wa = load_model(tmp_path / "a" / "model.npz").get_weights()
    np.testing.assert_array_equal(wa, load_model(tmp_path / "b" / "model.npz").get_weights())
    assert a.test_accuracy == b.test_accuracy > 0.4  # chance is 0.1
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "history.json",
        "model.npz",
        "report.md",
    ]
    assert any("pip install 'barenet[plot]'" in note for note in a.notes)
    assert "pip install 'barenet[plot]'" in (tmp_path / "a" / "report.md").read_text()
    run(dataclasses.replace(options, seed=5), tmp_path / "c", verbose=0, log=lambda line: None)
    assert not np.array_equal(wa, load_model(tmp_path / "c" / "model.npz").get_weights())


def test_sgd_with_momentum_and_a_constant_rate(tmp_path, mnist):
    options = TrainOptions(
        optimizer="sgd", schedule="constant", lr=0.05, hidden=(32,), limit=3000, epochs=2
    )
    result = run(options, tmp_path, verbose=0, log=lambda line: None)
    assert result.test_accuracy > 0.8
    config = load_model(tmp_path / "model.npz").get_config()["optimizer"]
    assert config["class"] == "SGD"
    assert config["config"]["momentum"] == 0.9 and config["config"]["lr"] == 0.05


# ---- the newer levers: augmentation, label smoothing, CNN widths, warm-up ----------------
def test_augment_is_random_shift_for_shifts_alone_and_image_augment_otherwise():
    """--shift alone keeps random_shift's draws (the shipped weights repeat only with
    them); flip, rotate or erase go through ImageAugment, which draws differently."""
    assert train._augment(TrainOptions()) is None
    x = np.random.default_rng(2).random((40, 28, 28), dtype=np.float32)
    shifted = train._augment(TrainOptions(shift=2))
    np.testing.assert_array_equal(
        shifted(x, np.random.default_rng(3)), random_shift(2)(x, np.random.default_rng(3))
    )
    for change, config in [
        ({"flip": True}, {"flip": True}),
        ({"rotate": 10.0}, {"rotation": 10.0}),
        ({"erase": 0.5}, {"erase": 0.5}),
    ]:
        chosen = train._augment(TrainOptions(shift=1, **change))
        assert isinstance(chosen, ImageAugment)
        assert chosen.get_config() == {"shift": 1, "rotation": 0.0, "flip": False, **config}


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_warmup_rises_linearly_then_follows_the_schedule(schedule):
    options = TrainOptions(lr=0.01, epochs=5, warmup=2, schedule=schedule)
    lr = train._optimizer(options, batches=10).lr  # 50 steps, the first 20 warming up
    assert isinstance(lr, bn.WarmUp) and lr.warmup_steps == 20
    assert [lr(t) for t in (0, 9, 19)] == pytest.approx([0.0005, 0.005, 0.01])
    if schedule == "cosine":  # cosine over the remaining 30 steps, to 0 at the end
        assert [lr(t) for t in (20, 35, 50)] == pytest.approx([0.01, 0.005, 0.0], abs=1e-15)
    else:
        assert lr(20) == lr(49) == 0.01
    plain = train._optimizer(TrainOptions(lr=0.01, epochs=5), batches=10).lr
    assert isinstance(plain, bn.CosineDecay) and plain.total_steps == 50  # as before


def test_a_run_with_every_new_lever_records_and_builds_what_it_was_given(tmp_path, fashion):
    options = TrainOptions(
        dataset="fashion",
        model="cnn",
        channels=(4, 8),
        hidden=(16,),
        epochs=2,
        warmup=1,
        limit=400,
        batch_size=64,
        shift=1,
        flip=True,
        rotate=10.0,
        erase=0.5,
        label_smoothing=0.1,
    )
    result = run(options, tmp_path, verbose=0, log=lambda line: None)
    model = load_model(tmp_path / "model.npz")
    assert [layer.out_channels for layer in model.layers if isinstance(layer, bn.Conv2D)] == [4, 8]
    assert result.num_params == model.num_params == count_params(options, (28, 28), 10)
    config = model.get_config()
    assert config["loss"] == {"class": "CrossEntropy", "config": {"label_smoothing": 0.1}}
    lr = config["optimizer"]["config"]["lr"]
    assert lr["class"] == "WarmUp" and lr["config"]["after"]["class"] == "CosineDecay"
    recorded = model.metadata["options"]
    assert recorded == options.to_dict()
    assert {k: recorded[k] for k in ("flip", "rotate", "erase", "label_smoothing")} == {
        "flip": True,
        "rotate": 10.0,
        "erase": 0.5,
        "label_smoothing": 0.1,
    }
    assert recorded["channels"] == [4, 8] and recorded["warmup"] == 1
    history = json.loads((tmp_path / "history.json").read_text())
    assert history["options"] == recorded and np.isfinite(history["history"]["loss"]).all()
    assert "--channels 4,8" in (tmp_path / "report.md").read_text()
