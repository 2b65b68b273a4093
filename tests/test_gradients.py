"""Float64 central-difference checks of every layer, activation and loss (check_grad)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import barenet as bn

F64 = np.float64
TOL = 1e-6


def away_from_zero(shape, seed):
    """Inputs with |x| >= 0.05, so finite differences never straddle a ReLU kink."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < 0.05, 0.05 * np.sign(x) + 0.05 * (x == 0), x)


dims = st.integers(1, 6)


@settings(max_examples=25, deadline=None)
@given(n=dims, d_in=dims, d_out=dims, seed=st.integers(0, 2**16))
def test_dense(n, d_in, d_out, seed):
    layer = bn.Dense(d_in, d_out, rng=seed, dtype=F64)
    layer.params["bias"][...] = np.random.default_rng(seed).standard_normal(d_out)
    errors = bn.check_grad(layer, away_from_zero((n, d_in), seed))
    assert max(errors.values()) < TOL, errors


@settings(max_examples=15, deadline=None)
@given(n=dims, d_in=dims, d_out=dims, seed=st.integers(0, 2**16))
def test_dense_with_penalties(n, d_in, d_out, seed):
    """backward adds the penalty gradients: check against d(sum(y*r) + penalty)."""
    layer = bn.Dense(
        d_in, d_out, weight_l1=0.01, weight_l2=0.02, bias_l1=0.03, bias_l2=0.04, rng=seed, dtype=F64
    )
    layer.params["bias"][...] = away_from_zero(d_out, seed + 1)
    x = away_from_zero((n, d_in), seed)
    r = np.random.default_rng(0).standard_normal((n, d_out))
    layer.forward(x)
    layer.backward(r)
    for name, p in layer.params.items():
        numeric = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + 1e-6
            up = np.sum(layer.forward(x) * r) + layer.penalty()
            p[i] = old - 1e-6
            down = np.sum(layer.forward(x) * r) + layer.penalty()
            p[i] = old
            numeric[i] = (up - down) / 2e-6
        assert bn.gradcheck.relative_error(layer.grads[name], numeric) < TOL


@pytest.mark.parametrize(
    "layer",
    [bn.ReLU(), bn.LeakyReLU(0.1), bn.Sigmoid(), bn.Tanh(), bn.Softmax(), bn.Flatten()],
    ids=lambda l: type(l).__name__,
)
@settings(max_examples=15, deadline=None)
@given(n=dims, d=st.integers(2, 7), seed=st.integers(0, 2**16))
def test_activations(layer, n, d, seed):
    # Up to |x| = 5: further out tanh's slope is below 2e-4 and central differences with
    # eps = 1e-6 keep too few digits of it (x = [6.1, -7.7] gave a relative error of 3e-6).
    x = np.clip(away_from_zero((n, d), seed) * 3, -5, 5)
    errors = bn.check_grad(layer, x)
    assert errors["input"] < TOL, errors


def test_flatten_on_images():
    errors = bn.check_grad(bn.Flatten(), away_from_zero((2, 3, 4, 5), 0))
    assert errors["input"] < TOL


@settings(max_examples=15, deadline=None)
@given(n=dims, d=dims, rate=st.floats(0.1, 0.9), seed=st.integers(0, 2**16))
def test_dropout_in_training(n, d, rate, seed):
    errors = bn.check_grad(bn.Dropout(rate), away_from_zero((n, d), seed), training=True)
    assert errors["input"] < TOL


def class_targets(n, c, seed, one_hot):
    y = np.random.default_rng(seed).integers(0, c, n)
    return np.eye(c)[y] if one_hot else y


@settings(max_examples=25, deadline=None)
@given(
    n=dims,
    c=st.integers(2, 6),
    seed=st.integers(0, 2**16),
    one_hot=st.booleans(),
    smoothing=st.sampled_from([0.0, 0.1]),
)
def test_cross_entropy(n, c, seed, one_hot, smoothing):
    logits = np.random.default_rng(seed).standard_normal((n, c)) * 3
    loss = bn.CrossEntropy(label_smoothing=smoothing)
    errors = bn.check_grad(loss, logits, class_targets(n, c, seed, one_hot))
    assert errors["input"] < TOL


@settings(max_examples=15, deadline=None)
@given(n=dims, c=st.integers(2, 6), seed=st.integers(0, 2**16))
def test_cross_entropy_on_probabilities(n, c, seed):
    probs = bn.activations.softmax(np.random.default_rng(seed).standard_normal((n, c)))
    loss = bn.CrossEntropy(from_logits=False)
    assert bn.check_grad(loss, probs, class_targets(n, c, seed, False))["input"] < TOL


@settings(max_examples=20, deadline=None)
@given(n=dims, k=st.integers(1, 4), seed=st.integers(0, 2**16), from_logits=st.booleans())
def test_binary_cross_entropy(n, k, seed, from_logits):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, k)) * 2
    outputs = z if from_logits else bn.activations.sigmoid(z)
    y = rng.integers(0, 2, (n, k)).astype(F64)
    loss = bn.BinaryCrossEntropy(from_logits=from_logits)
    assert bn.check_grad(loss, outputs, y)["input"] < TOL


@pytest.mark.parametrize("loss", [bn.MSE(), bn.MAE()], ids=["MSE", "MAE"])
@settings(max_examples=15, deadline=None)
@given(n=dims, k=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_regression_losses(loss, n, k, seed):
    rng = np.random.default_rng(seed)
    outputs = rng.standard_normal((n, k))
    y = outputs + away_from_zero((n, k), seed + 1)  # MAE's kink at o == y stays out of reach
    assert bn.check_grad(loss, outputs, y)["input"] < TOL


def test_model_gradient_through_fused_softmax():
    """Dense -> Softmax + CrossEntropy, the textbook way: the gradient the model trains with
    (through the fused softmax) equals the finite-difference gradient of the whole model."""
    model = bn.Sequential(
        [bn.Dense(4, 5, dtype=F64), bn.Tanh(), bn.Dense(5, 3, dtype=F64), bn.Softmax()], seed=1
    )
    model.compile(loss="cross_entropy", optimizer="sgd")
    x = away_from_zero((6, 4), 2)
    y = np.array([0, 1, 2, 2, 1, 0])
    loss = bn.CrossEntropy(from_logits=False)

    def value(weights):
        model.set_weights(weights)
        return loss.forward(model.forward(x), y)

    analytic = np.concatenate([g.reshape(-1) for g in model.gradients(x, y).values()])
    w = model.get_weights()
    numeric = np.zeros_like(w)
    for i in range(w.size):
        step = np.zeros_like(w)
        step[i] = 1e-6
        numeric[i] = (value(w + step) - value(w - step)) / 2e-6
    assert bn.gradcheck.relative_error(analytic, numeric) < TOL


def test_check_grad_catches_a_wrong_gradient():
    class BadReLU(bn.ReLU):
        def backward(self, dy):
            return dy  # forgets the mask

    assert bn.check_grad(BadReLU(), np.array([[-1.0, 2.0, -3.0]]))["input"] > 0.1


def test_check_grad_result_is_the_largest_error_and_names_each_array():
    layer = bn.Dense(3, 2, rng=0, dtype=F64)
    result = bn.check_grad(layer, away_from_zero((4, 3), 0))
    assert set(result) == set(result.keys()) == {"input", "weight", "bias"}
    assert "weight" in result
    assert float(result) == max(result.values()) and result < TOL
    assert result["weight"] == result.errors["weight"]
    assert "GradCheck(max=" in repr(result)
