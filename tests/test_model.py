"""Sequential end to end: training, determinism, guards, callbacks and argument errors."""

import warnings

import numpy as np
import pytest

import barenet as bn
from barenet.datasets import sine, spiral, vertical


def spiral_model(seed=0, **compile_args):
    model = bn.Sequential([bn.Dense(2, 64), bn.ReLU(), bn.Dense(64, 3)], seed=seed)
    model.compile(loss="cross_entropy", optimizer=bn.Adam(lr=0.02, decay=1e-5), **compile_args)
    return model


def test_hand_worked_training_step():
    # One Dense(2, 2) with W = I, b = 0, one sample x = [1, 0], class 1, SGD lr = 0.5.
    layer = bn.Dense(2, 2, dtype=np.float64)
    layer.params["weight"][...] = np.eye(2)
    model = bn.Sequential([layer])
    model.compile(loss="cross_entropy", optimizer=bn.SGD(lr=0.5), metrics=[])
    model.fit(np.array([[1.0, 0.0]]), np.array([1]), epochs=1, batch_size=1, verbose=0)
    # logits z = W x = [1, 0]; p = softmax(z) = [e/(e+1), 1/(e+1)] = [0.7311, 0.2689]
    # dz = p - onehot = [0.7311, -0.7311]; dW = dz x^T = [[0.7311, 0], [-0.7311, 0]]; db = dz
    # W <- W - 0.5 dW = [[0.6345, 0], [0.3655, 1]]; b <- [-0.3655, 0.3655]
    p0 = np.e / (np.e + 1)
    np.testing.assert_allclose(layer.params["weight"], [[1 - 0.5 * p0, 0], [0.5 * p0, 1]])
    np.testing.assert_allclose(layer.params["bias"], [-0.5 * p0, 0.5 * p0])


def test_spiral_reaches_95_percent():
    x, y = spiral(100, 3, rng=0)
    model = bn.Sequential([bn.Dense(2, 64), bn.ReLU(), bn.Dense(64, 3)], seed=0)
    model.compile(loss="cross_entropy", optimizer=bn.Adam(lr=0.05, decay=5e-7))
    history = model.fit(x, y, epochs=3000, batch_size=300, seed=0, verbose=0)
    assert history["accuracy"][-1] >= 0.95
    assert model.evaluate(x, y)["accuracy"] >= 0.95
    assert history["loss"][-1] < history["loss"][0] / 4


def test_textbook_softmax_model_trains_like_the_logits_model():
    x, y = spiral(100, 3, rng=1)
    plain = spiral_model(seed=3)
    textbook = bn.Sequential([bn.Dense(2, 64), bn.ReLU(), bn.Dense(64, 3), bn.Softmax()], seed=3)
    textbook.compile(loss="cross_entropy", optimizer=bn.Adam(lr=0.02, decay=1e-5))
    h1 = plain.fit(x, y, epochs=50, batch_size=100, seed=0, verbose=0)
    h2 = textbook.fit(x, y, epochs=50, batch_size=100, seed=0, verbose=0)
    assert h1["loss"] == h2["loss"]
    proba = textbook.predict_proba(x)
    np.testing.assert_allclose(proba, plain.predict_proba(x), rtol=1e-5)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)


def test_same_seed_is_bit_identical():
    x, y = spiral(50, 3, rng=0)
    runs = []
    for _ in range(2):
        model = bn.Sequential(
            [bn.Dense(2, 32), bn.ReLU(), bn.Dropout(0.1), bn.Dense(32, 3)], seed=5
        )
        model.compile(optimizer=bn.Adam(lr=0.01))
        history = model.fit(x, y, epochs=5, batch_size=16, seed=11, verbose=0)
        runs.append((model.get_weights(), history["loss"]))
    assert np.array_equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
    assert runs[0][0].dtype == np.float32


def test_binary_classification_and_regression():
    x, y = vertical(100, 2, rng=0)
    model = bn.Sequential([bn.Dense(2, 16), bn.ReLU(), bn.Dense(16, 1), bn.Sigmoid()], seed=0)
    model.compile(loss="binary_cross_entropy", optimizer=bn.Adam(lr=0.02))
    model.fit(x, y.reshape(-1, 1), epochs=200, batch_size=200, verbose=0)
    assert model.evaluate(x, y.reshape(-1, 1))["accuracy"] > 0.9
    assert set(np.unique(model.predict(x))) <= {0, 1} and model.predict(x).shape == (200,)

    xs, ys = sine(500, rng=0)
    reg = bn.Sequential(
        [bn.Dense(1, 64), bn.Tanh(), bn.Dense(64, 64), bn.Tanh(), bn.Dense(64, 1)], seed=0
    )
    reg.compile(loss="mse", optimizer=bn.Adam(lr=0.005), metrics=["mae"])
    reg.fit(xs, ys, epochs=300, batch_size=100, verbose=0)
    assert reg.evaluate(xs, ys)["mae"] < 0.1
    assert reg.predict(xs).shape == (500, 1)


def test_nan_inputs_are_refused_before_training():
    x, y = spiral(100, 3, rng=0)
    x[170] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        spiral_model().fit(x, y, epochs=1, verbose=0)


def test_diverging_loss_stops_with_epoch_and_batch_and_keeps_good_weights():
    x, y = spiral(100, 3, rng=0)
    model = spiral_model()
    model.fit(x, y, epochs=2, batch_size=50, verbose=0)
    good = model.get_weights()
    model.optimizer = bn.SGD(lr=1e30)
    with pytest.raises(bn.TrainingError, match=r"loss became .* at epoch 1, batch \d+"):
        model.fit(x, y, epochs=3, batch_size=10, verbose=0)
    assert np.array_equal(model.get_weights(), good)


def test_warns_on_unscaled_inputs_and_chance_accuracy():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (400, 8)).astype(np.uint8)
    y = rng.integers(0, 5, 400)
    model = bn.Sequential([bn.Dense(8, 5)], seed=0)
    model.compile(optimizer=bn.SGD(lr=1e-9))
    with pytest.warns(UserWarning) as record:
        model.fit(x, y, epochs=1, batch_size=5, verbose=0)
    messages = " ".join(str(w.message) for w in record)
    assert "integers" in messages and "chance" in messages
    with pytest.warns(UserWarning, match="scaled"):
        model.fit(x.astype(np.float32), y, epochs=1, batch_size=400, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(x / np.float32(255), y, epochs=1, batch_size=400, verbose=0)


@pytest.mark.parametrize(
    "kwargs,arg",
    [
        (dict(batch_size=0), "batch_size"),
        (dict(epochs=-1), "epochs"),
        (dict(validation_split=1.5), "validation_split"),
        (dict(validation_data=([1],)), "validation_data"),
    ],
)
def test_bad_fit_arguments(kwargs, arg):
    x, y = spiral(10, 3, rng=0)
    with pytest.raises(ValueError, match=arg):
        spiral_model().fit(x, y, verbose=0, **kwargs)


def test_mismatched_lengths_and_wrong_width():
    x, y = spiral(10, 3, rng=0)
    model = spiral_model()
    with pytest.raises(ValueError, match="30 samples vs 29 targets"):
        model.fit(x, y[:-1], verbose=0)
    assert model.input_shape is None  # a refused fit leaves nothing behind
    model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match=r"shape \(2,\), got \(5,\)"):
        model.predict(np.zeros((4, 5), dtype=np.float32))
    with pytest.raises(bn.BarenetError, match="compile"):
        bn.Sequential([bn.Dense(2, 3)]).fit(x, y)
    with pytest.raises(ValueError, match="metrics"):
        bn.Sequential([bn.Dense(2, 3)]).compile(metrics=["auc"])


def test_validation_split_and_history():
    x, y = spiral(100, 3, rng=0)
    model = spiral_model()
    history = model.fit(x, y, epochs=3, batch_size=32, validation_split=0.2, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"}
    assert len(history["val_loss"]) == 3 and history.epoch == [0, 1, 2]


def test_early_stopping_restores_best_weights():
    x, y = spiral(100, 3, rng=0)
    model = spiral_model()
    stopper = bn.EarlyStopping(monitor="val_loss", patience=2)
    # A learning rate this high makes the validation loss bounce, so training stops early.
    model.optimizer = bn.SGD(lr=5.0)
    model.fit(x, y, epochs=100, batch_size=10, validation_split=0.3, callbacks=[stopper], verbose=0)
    assert stopper.stopped_epoch is not None and stopper.stopped_epoch < 99
    assert model.evaluate(x[-90:], y[-90:])["loss"] == pytest.approx(stopper.best, rel=1e-5)


def test_checkpoint_resume_is_exact(tmp_path):
    x, y = spiral(60, 3, rng=0)
    straight = spiral_model(seed=2)
    straight.fit(x, y, epochs=4, batch_size=20, seed=9, verbose=0)

    first = spiral_model(seed=2)
    checkpoint = bn.Checkpoint(tmp_path / "ckpt-{epoch}.npz")
    first.fit(x, y, epochs=2, batch_size=20, seed=9, callbacks=[checkpoint], verbose=0)
    assert [p.rsplit("/", 1)[-1] for p in checkpoint.saved] == ["ckpt-1.npz", "ckpt-2.npz"]
    resumed = bn.load_model(tmp_path / "ckpt-2.npz")
    resumed.fit(x, y, epochs=2, batch_size=20, seed=9, initial_epoch=2, verbose=0)
    assert np.array_equal(resumed.get_weights(), straight.get_weights())


def test_learning_rate_scheduler_callback():
    x, y = spiral(20, 3, rng=0)
    model = spiral_model()
    sched = bn.LearningRateScheduler(lambda epoch, lr: 0.1 * 0.5**epoch)
    history = model.fit(x, y, epochs=3, batch_size=60, callbacks=[sched], verbose=0)
    # the logged lr includes the optimizer's own decay (1e-5 per step)
    np.testing.assert_allclose(
        history["lr"], [0.1 / (1 + 1e-5), 0.05 / (1 + 2e-5), 0.025 / (1 + 3e-5)]
    )


def test_progress_lines_when_not_a_terminal(capsys):
    x, y = spiral(20, 3, rng=0)
    spiral_model().fit(x, y, epochs=2, batch_size=20)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("epoch 1/2") and "loss=" in err[0]


def test_summary_lists_layers_and_parameters():
    lines = []
    model = bn.Sequential([bn.Flatten(), bn.Dense(784, 128), bn.ReLU(), bn.Dense(128, 10)])
    model.input_shape = (28, 28)
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "(N, 784)" in text and "(N, 10)" in text and "101,770" in text
    assert model.num_params == 784 * 128 + 128 + 128 * 10 + 10


def test_a_custom_layer_without_output_shape_trains_on_any_number_of_classes():
    """Class ids were checked against the width Layer.output_shape assumes (the input's),
    so a hand-written Dense(2, 3) that keeps the default was refused 'class ids in [0, 2)'."""

    class HandDense(bn.Layer):
        def __init__(self) -> None:
            super().__init__()
            rng = np.random.default_rng(0)
            self.params = {"w": rng.standard_normal((2, 3)).astype(np.float32)}
            self.grads = {"w": np.zeros((2, 3), np.float32)}

        def forward(self, x, training=False):
            self._x = x
            return x @ self.params["w"]

        def backward(self, dy):
            self.grads["w"][...] = self._x.T @ dy
            return dy @ self.params["w"].T

    x = np.random.default_rng(1).standard_normal((30, 2)).astype(np.float32)
    y = np.arange(30) % 3
    model = bn.Sequential([HandDense(), bn.Softmax()])
    model.compile(loss="cross_entropy", optimizer=bn.SGD(lr=0.1))
    history = model.fit(x, y, epochs=2, batch_size=10, verbose=0)
    assert len(history["loss"]) == 2
    # built-in layers still tell the width, so an id past it is refused before training
    builtin = bn.Sequential([bn.Dense(2, 3), bn.Softmax()])
    builtin.compile(loss="cross_entropy")
    with pytest.raises(bn.errors.ArgumentError, match=r"class ids in \[0, 3\)"):
        builtin.fit(x, y + 1, epochs=1, verbose=0)
