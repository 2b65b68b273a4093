"""The public training step: ``train_step`` and ``gradients``, the loop ``fit`` is made of,
and losses defined outside barenet that compile, fit, predict and evaluate."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import barenet as bn
from barenet.datasets import sine, spiral, vertical

F64 = np.float64


def small_model(optimizer, *, dtype=np.float32, seed=0, batchnorm=True):
    layers = [bn.Dense(2, 16, dtype=dtype), bn.Tanh()]
    if batchnorm:
        layers.append(bn.BatchNorm(16, dtype=dtype))
    layers += [bn.Dense(16, 3, weight_l2=1e-3, dtype=dtype), bn.Softmax()]
    model = bn.Sequential(layers, seed=seed)
    model.compile(loss="cross_entropy", optimizer=optimizer)
    return model


def test_train_step_equals_one_epoch_of_fit_with_one_batch():
    x, y = spiral(32, 3, rng=0)  # 96 samples, one batch
    stepped, fitted = small_model(bn.Adam(lr=0.01)), small_model(bn.Adam(lr=0.01))
    losses = [stepped.train_step(x, y) for _ in range(3)]
    history = fitted.fit(x, y, epochs=3, batch_size=len(x), shuffle=False, verbose=0)
    assert np.array_equal(stepped.get_weights(), fitted.get_weights())
    batchnorm_state = [layer.state() for layer in (stepped.layers[2], fitted.layers[2])]
    for name in batchnorm_state[0]:
        assert np.array_equal(batchnorm_state[0][name], batchnorm_state[1][name])
    assert losses == pytest.approx(history["loss"], rel=1e-12)
    assert losses[-1] < losses[0]
    assert stepped.input_shape == (2,)


def test_gradients_equal_finite_differences_of_the_loss():
    """Through BatchNorm (batch statistics), a fused Softmax and an L2 penalty, in float64."""
    x, y = spiral(4, 3, rng=1)
    model = small_model(bn.SGD(lr=0.1), dtype=F64, seed=2)
    loss = bn.CrossEntropy(from_logits=False)

    def value():
        out = model.forward(x, training=True)
        return loss.forward(out, y) + sum(layer.penalty() for layer in model.layers)

    grads = model.gradients(x, y)
    assert list(grads) == [
        "dense_1/weight",
        "dense_1/bias",
        "batchnorm_1/weight",
        "batchnorm_1/bias",
        "dense_2/weight",
        "dense_2/bias",
    ]
    for (name, analytic), layer, key in zip(
        grads.items(),
        [model.layers[i] for i in (0, 0, 2, 2, 3, 3)],
        ["weight", "bias"] * 3,
        strict=True,
    ):
        p = layer.params[key].reshape(-1)
        numeric = np.zeros(p.size)
        for i in range(p.size):
            old = p[i]
            p[i] = old + 1e-6
            up = value()
            p[i] = old - 1e-6
            down = value()
            p[i] = old
            numeric[i] = (up - down) / 2e-6
        error = bn.gradcheck.relative_error(analytic.reshape(-1), numeric)
        assert error < 1e-6, name


def test_gradients_change_nothing_and_are_what_train_step_applies():
    x, y = spiral(10, 3, rng=2)
    model = small_model(bn.SGD(lr=0.5))
    model.train_step(x, y)  # BatchNorm's running statistics move away from their start
    weights, stats = model.get_weights(), model.layers[2].state()
    stats = {k: a.copy() for k, a in stats.items()}
    steps = model.optimizer.iterations
    grads = model.gradients(x, y)
    assert np.array_equal(model.get_weights(), weights)
    for k, a in model.layers[2].state().items():
        assert np.array_equal(a, stats[k])
    assert model.optimizer.iterations == steps
    assert model.gradients(x, y).keys() == grads.keys()
    for name in grads:
        assert np.array_equal(model.gradients(x, y)[name], grads[name])
    model.train_step(x, y)  # plain SGD: w <- w - lr * g
    moved = weights - model.get_weights()
    expected = np.concatenate([g.reshape(-1) for g in grads.values()]) * np.float32(0.5)
    np.testing.assert_allclose(moved, expected, rtol=1e-5, atol=1e-7)


def test_gradients_in_inference_mode_read_the_running_statistics():
    x, y = spiral(10, 3, rng=3)
    model = small_model(bn.SGD(lr=0.5))
    model.train_step(x, y)
    training, inference = model.gradients(x, y), model.gradients(x, y, training=False)
    assert not np.allclose(training["dense_1/weight"], inference["dense_1/weight"])


def test_the_step_refuses_a_model_not_compiled_or_without_parameters():
    x, y = spiral(5, 3, rng=0)
    model = bn.Sequential([bn.Dense(2, 3)])
    for call in (model.train_step, model.gradients, model.fit, model.evaluate):
        with pytest.raises(bn.errors.StateError, match="compile") as caught:
            call(x, y)
        assert isinstance(caught.value, (bn.BarenetError, RuntimeError))
    empty = bn.Sequential([bn.Flatten()])
    empty.compile("cross_entropy", "sgd")
    with pytest.raises(bn.errors.ArgumentError, match="no parameters"):
        empty.gradients(x, y % 2)
    with pytest.raises(bn.errors.ArgumentError, match="no parameters"):
        empty.train_step(x, y % 2)
    with pytest.raises(bn.errors.ArgumentError, match="5 samples vs 4 targets"):
        small_model("sgd").train_step(x[:5], y[:4])


def test_a_diverging_train_step_raises_and_leaves_the_weights():
    x, y = spiral(20, 3, rng=0)
    model = small_model(bn.SGD(lr=1e30), batchnorm=False)
    model.train_step(x, y)
    weights = model.get_weights()
    with pytest.raises(bn.TrainingError, match="loss became"):
        for _ in range(5):
            weights = model.get_weights()
            model.train_step(x, y)
    assert np.array_equal(model.get_weights(), weights)


def test_compile_takes_the_losses_default_metrics():
    """A regression loss with compile's default metrics was refused: 'metric 'accuracy'
    needs a classification loss'; the default is now the loss's own."""
    model = bn.Sequential([bn.Dense(1, 1)])
    model.compile(loss="mse")
    assert model.metrics == []
    model.compile(loss="cross_entropy")
    assert model.metrics == ["accuracy"]
    with pytest.raises(bn.errors.ArgumentError, match="metrics must be among mae, mse"):
        model.compile(loss="mae", metrics=["accuracy"])


def test_warnings_point_at_the_line_calling_fit():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (400, 8)).astype(np.uint8), rng.integers(0, 5, 400)
    model = bn.Sequential([bn.Dense(8, 5)], seed=0)
    model.compile(optimizer=bn.SGD(lr=1e-9))
    with pytest.warns(UserWarning) as record:
        model.fit(x, y, epochs=1, batch_size=5, verbose=0)
    messages = [str(w.message) for w in record]
    assert any("integers" in m for m in messages) and any("chance" in m for m in messages)
    assert {w.filename for w in record} == {__file__}


class MulticlassHinge(bn.Loss):
    """Crammer-Singer hinge ``mean(max(0, 1 + max_{j != y} z_j - z_y))``: scores, not
    probabilities: it fuses with no activation, and ``predict_proba`` gives the scores."""

    metrics = ("accuracy",)
    default_metrics = ("accuracy",)

    def forward(self, outputs, targets):
        n = len(outputs)
        rows, t = np.arange(n), np.asarray(targets, dtype=np.int64)
        others = outputs.copy()
        others[rows, t] = -np.inf
        self._j, self._rows, self._t = others.argmax(axis=1), rows, t
        margins = 1 + others[rows, self._j] - outputs[rows, t]
        self._active = margins > 0
        self._shape, self._dtype = outputs.shape, outputs.dtype
        return float(np.maximum(margins, 0).mean())

    def backward(self):
        grad = np.zeros(self._shape, dtype=self._dtype)
        a = self._active / self._dtype.type(len(grad))
        grad[self._rows, self._j] += a
        grad[self._rows, self._t] -= a
        return grad

    def labels(self, probabilities):
        return probabilities.argmax(axis=1)

    def metric(self, name, outputs, targets):
        return float(np.mean(outputs.argmax(axis=1) == targets))

    def chance_level(self, classes):
        return 1 / classes


def test_a_loss_defined_outside_barenet_trains_predicts_and_evaluates():
    x, y = vertical(100, 3, rng=0)
    model = bn.Sequential([bn.Dense(2, 64), bn.ReLU(), bn.Dense(64, 3)], seed=0)
    model.compile(loss=MulticlassHinge(), optimizer=bn.Adam(lr=0.02))
    assert model.metrics == ["accuracy"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = model.fit(x, y, epochs=100, batch_size=300, seed=0, verbose=0)
    assert history["accuracy"][-1] > 0.85
    scores = model.predict_proba(x)
    assert np.array_equal(scores, model.forward(x.astype(np.float32)))  # no softmax added
    assert np.array_equal(model.predict(x), scores.argmax(axis=1))
    result = model.evaluate(x, y)
    assert result["accuracy"] == pytest.approx(np.mean(model.predict(x) == y))
    assert result["loss"] < history["loss"][0]


class Poisson(bn.Loss):
    """Poisson regression on a log rate ``z``: ``mean(exp(z) - y z)``; predictions are rates."""

    def forward(self, outputs, targets):
        self._z, self._y = outputs, np.asarray(targets, outputs.dtype).reshape(outputs.shape)
        return float((np.exp(outputs) - self._y * outputs).mean())

    def backward(self):
        return (np.exp(self._z) - self._y) / self._z.dtype.type(self._z.size)

    def probabilities(self, outputs):
        return np.exp(outputs)

    def metric(self, name, outputs, targets):  # of the rates, not of their logarithms
        return super().metric(name, self.probabilities(outputs), targets)


def test_a_regression_loss_with_a_link_function_predicts_rates():
    xs, _ = sine(200, rng=0)
    rate = np.exp(1 + xs[:, :1])
    counts = np.random.default_rng(0).poisson(rate).astype(np.float32)
    model = bn.Sequential([bn.Dense(1, 1)], seed=0)
    model.compile(loss=Poisson(), optimizer=bn.Adam(lr=0.05), metrics=["mae"])
    model.fit(xs, counts, epochs=300, batch_size=200, verbose=0)
    np.testing.assert_allclose(model.predict(xs), rate, rtol=0.25)
    assert model.evaluate(xs, counts)["mae"] < 2
