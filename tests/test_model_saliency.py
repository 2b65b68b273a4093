"""``Sequential.input_gradient``: the gradient of a class's logit with respect to the input,
checked against float64 central differences of that logit on a convolutional network and
a perceptron, both ending in a Softmax the score leaves out."""

from __future__ import annotations

import numpy as np
import pytest

import barenet as bn
from barenet.conv import Conv2D, MaxPool2D
from barenet.errors import ArgumentError
from barenet.layers import Dense, Dropout, Flatten
from barenet.normalization import BatchNorm

F64 = np.float64
EPS = 1e-6


def small_cnn() -> bn.Sequential:
    """8x8 images, 5 classes, every kind of layer the shipped CNNs have, in float64."""
    model = bn.Sequential(
        [
            Conv2D(1, 4, 3, padding="same", dtype=F64),
            BatchNorm(4, dtype=F64),
            bn.ReLU(),
            MaxPool2D(2),
            Flatten(),
            Dense(64, 12, dtype=F64),
            bn.ReLU(),
            Dropout(0.5),
            Dense(12, 5, dtype=F64),
            bn.Softmax(),
        ],
        seed=3,
    )
    bnorm = model.layers[1]
    rng = np.random.default_rng(0)
    for name, a in bnorm.state().items():  # running statistics that are not 0 and 1
        a[...] = rng.uniform(0.5, 1.5, a.shape) if "var" in name else rng.normal(0, 0.3, a.shape)
    model.input_shape = (8, 8)
    return model


def small_mlp() -> bn.Sequential:
    model = bn.Sequential(
        [Flatten(), Dense(64, 16, dtype=F64), bn.Tanh(), Dense(16, 4, dtype=F64), bn.Softmax()],
        seed=1,
    )
    model.input_shape = (8, 8)
    return model


def logits(model: bn.Sequential, x: np.ndarray) -> np.ndarray:
    out = x
    for layer in model.layers[:-1]:  # the score: before the Softmax
        out = layer.forward(out, training=False)
    return out


def central_difference(model, x, n, pixel, cls):
    up, down = x.copy(), x.copy()
    up[(n, *pixel)] += EPS
    down[(n, *pixel)] -= EPS
    return (logits(model, up)[n, cls] - logits(model, down)[n, cls]) / (2 * EPS)


@pytest.mark.parametrize("make", [small_cnn, small_mlp], ids=["cnn", "mlp"])
def test_the_gradient_of_a_class_logit_matches_central_differences(make):
    model = make()
    x = np.random.default_rng(7).uniform(0, 1, (3, 8, 8))
    targets = np.array([0, 2, 3])
    grad = model.input_gradient(x, targets)
    assert grad.shape == x.shape and grad.dtype == F64
    pixels = [(0, 0), (3, 4), (7, 7), (5, 1), (2, 6)]
    for n, cls in enumerate(targets):
        for pixel in pixels:
            expected = central_difference(model, x, n, pixel, cls)
            assert grad[(n, *pixel)] == pytest.approx(expected, rel=1e-5, abs=1e-8)
    assert np.abs(grad).max() > 1e-3  # not a vacuous zero map


def test_one_class_for_all_samples_and_each_sample_on_its_own():
    model = small_cnn()
    x = np.random.default_rng(1).uniform(0, 1, (4, 8, 8))
    both = model.input_gradient(x, 1)
    for n in range(4):
        np.testing.assert_allclose(model.input_gradient(x[n : n + 1], [1])[0], both[n], rtol=1e-12)


def test_the_score_is_the_logit_not_the_probability():
    model = small_mlp()
    x = np.random.default_rng(2).uniform(0, 1, (1, 8, 8))
    grad = model.input_gradient(x, 0)[0, 3, 3]
    up, down = x.copy(), x.copy()
    up[0, 3, 3] += EPS
    down[0, 3, 3] -= EPS
    d_proba = (model.predict_proba(up)[0, 0] - model.predict_proba(down)[0, 0]) / (2 * EPS)
    assert grad == pytest.approx(central_difference(model, x, 0, (3, 3), 0), rel=1e-5)
    assert grad != pytest.approx(d_proba, rel=1e-2)


def test_weights_gradients_and_answers_are_left_as_they_were():
    model = small_cnn()
    model.compile("cross_entropy", "adam")
    x = np.random.default_rng(3).uniform(0, 1, (2, 8, 8))
    model.fit(x, np.array([0, 1]), epochs=1, batch_size=2, verbose=0, seed=0)
    weights = model.get_weights()
    grads = model._bind()[1].copy()
    before = model.predict_proba(x)
    first = model.input_gradient(x, 4)
    np.testing.assert_array_equal(model.input_gradient(x, 4), first)  # no dropout draws
    np.testing.assert_array_equal(model.get_weights(), weights)
    np.testing.assert_array_equal(model._bind()[1], grads)
    np.testing.assert_array_equal(model.predict_proba(x), before)


def test_a_model_without_a_softmax_differentiates_its_outputs():
    model = bn.Sequential([Flatten(), Dense(64, 3, dtype=F64)], seed=0)
    model.input_shape = (8, 8)
    x = np.zeros((1, 8, 8))
    w = model.layers[1].params["weight"]
    np.testing.assert_allclose(model.input_gradient(x, 2)[0].ravel(), w[2], rtol=1e-15)


@pytest.mark.parametrize(
    ("target", "words"),
    [
        (5, r"class ids in \[0, 5\)"),
        (-1, r"class ids in \[0, 5\)"),
        ([0, 1, 2], "2 class ids"),
        ([0.5, 1.0], "float64 values"),
        ("1", "class id"),
        (True, "class id"),
        ([[0], [1]], "shape"),
    ],
)
def test_bad_targets_are_refused_naming_the_argument(target, words):
    model = small_cnn()
    with pytest.raises(ArgumentError, match=words):
        model.input_gradient(np.zeros((2, 8, 8)), target)


def test_bad_inputs_are_refused_like_predict_refuses_them():
    model = small_cnn()
    with pytest.raises(ArgumentError, match="samples of shape"):
        model.input_gradient(np.zeros((1, 9, 9)), 0)
    with pytest.raises(ArgumentError, match="NaN"):
        model.input_gradient(np.full((1, 8, 8), np.nan), 0)
