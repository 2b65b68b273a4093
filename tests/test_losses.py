"""Losses: worked values, stability for huge logits, target formats and errors."""

import warnings

import numpy as np
import pytest
import torch

import barenet as bn


def test_cross_entropy_worked_example():
    # logits [0, ln 3] -> softmax [1/4, 3/4]; target class 1 -> loss -ln(3/4)
    logits = np.array([[0.0, np.log(3.0)]])
    loss = bn.CrossEntropy()
    assert loss.forward(logits, np.array([1])) == pytest.approx(-np.log(0.75))
    np.testing.assert_allclose(loss.backward(), [[0.25, -0.25]])  # (p - y) / N


def test_cross_entropy_matches_torch_with_label_smoothing():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((8, 5))
    y = rng.integers(0, 5, 8)
    tz = torch.from_numpy(z).requires_grad_()
    ref = torch.nn.functional.cross_entropy(tz, torch.from_numpy(y), label_smoothing=0.1)
    ref.backward()
    loss = bn.CrossEntropy(label_smoothing=0.1)
    assert loss.forward(z, y) == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(loss.backward(), tz.grad.numpy(), rtol=1e-10, atol=1e-15)


SMOOTHING = [0.0, 0.01, 0.1, 0.3, 0.9]


@pytest.mark.parametrize("eps", SMOOTHING)
@pytest.mark.parametrize("one_hot", [False, True], ids=["ids", "probability rows"])
def test_smoothed_cross_entropy_matches_torch(eps, one_hot):
    """PyTorch's definition, q = (1 - eps) * y + eps / K, for class ids and for probability
    rows (which PyTorch smooths the same way): loss and fused gradient (p - q) / N."""
    rng = np.random.default_rng(3)
    z = rng.standard_normal((16, 7)) * 4
    y = rng.integers(0, 7, 16)
    target = rng.dirichlet(np.ones(7), 16) if one_hot else y
    tz = torch.from_numpy(z).requires_grad_()
    ref = torch.nn.functional.cross_entropy(tz, torch.from_numpy(target), label_smoothing=eps)
    ref.backward()
    loss = bn.losses.get("cross_entropy", label_smoothing=eps)
    assert loss.forward(z, target) == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(loss.backward(), tz.grad.numpy(), rtol=1e-10, atol=1e-15)


def _central_differences(loss, z, y, h=1e-6):
    """d loss / d z by central differences, one entry at a time (float64)."""
    grad = np.zeros_like(z)
    for i in np.ndindex(z.shape):
        up, down = z.copy(), z.copy()
        up[i] += h
        down[i] -= h
        grad[i] = (loss.forward(up, y) - loss.forward(down, y)) / (2 * h)
    return grad


@pytest.mark.parametrize("eps", SMOOTHING)
@pytest.mark.parametrize("from_logits", [True, False])
def test_smoothed_cross_entropy_gradient_by_finite_differences(eps, from_logits):
    """Central differences in float64 agree with backward to 1e-6 (the differences' own
    error: step 1e-6, probabilities kept above 0.01 so -q / p is smooth at that scale)."""
    rng = np.random.default_rng(4)
    z = rng.standard_normal((6, 5))
    outputs = z if from_logits else bn.activations.softmax(z, axis=1)
    assert outputs.min() > 0.01 or from_logits
    y = rng.integers(0, 5, 6)
    loss = bn.CrossEntropy(label_smoothing=eps, from_logits=from_logits)
    loss.forward(outputs, y)
    analytic = loss.backward()
    numeric = _central_differences(loss, outputs, y)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_a_model_ending_in_softmax_trains_on_the_smoothed_fused_gradient():
    """Dense + Softmax with CrossEntropy(label_smoothing): training skips the Softmax and
    the loss keeps its smoothing on the logits, so the weights' gradient is PyTorch's."""
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((9, 3)), rng.integers(0, 4, 9)
    model = bn.Sequential([bn.Dense(3, 4, dtype=np.float64, rng=0), bn.Softmax()])
    model.compile(bn.CrossEntropy(label_smoothing=0.2), "sgd")
    grads = model.gradients(x, y, training=False)
    dense = model.layers[0].params
    w = torch.from_numpy(dense["weight"].copy()).requires_grad_()
    b = torch.from_numpy(dense["bias"].copy()).requires_grad_()
    logits = torch.from_numpy(x) @ w.T + b
    torch.nn.functional.cross_entropy(logits, torch.from_numpy(y), label_smoothing=0.2).backward()
    np.testing.assert_allclose(grads["dense_1/weight"], w.grad.numpy(), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(grads["dense_1/bias"], b.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_smoothing_is_saved_with_the_model(tmp_path):
    model = bn.Sequential([bn.Flatten(), bn.Dense(4, 3)], seed=0)
    model.compile(bn.losses.get("cross_entropy", label_smoothing=0.1), "adam")
    loaded = bn.load_model(model.save(tmp_path / "m.npz"))
    assert isinstance(loaded.loss, bn.CrossEntropy) and loaded.loss.label_smoothing == 0.1
    assert loaded.get_config()["loss"] == model.get_config()["loss"]


def test_bce_matches_torch():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((6, 3)) * 4
    y = rng.integers(0, 2, (6, 3)).astype(float)
    tz = torch.from_numpy(z).requires_grad_()
    ref = torch.nn.functional.binary_cross_entropy_with_logits(tz, torch.from_numpy(y))
    ref.backward()
    loss = bn.BinaryCrossEntropy()
    assert loss.forward(z, y) == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(loss.backward(), tz.grad.numpy(), rtol=1e-10)


def test_one_hot_and_ids_give_the_same_loss():
    z = np.random.default_rng(2).standard_normal((4, 3)).astype(np.float32)
    y = np.array([0, 2, 1, 2])
    a, b = bn.CrossEntropy(), bn.CrossEntropy()
    assert a.forward(z, y) == pytest.approx(b.forward(z, np.eye(3)[y]), rel=1e-6)
    np.testing.assert_allclose(a.backward(), b.backward(), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_logits_give_finite_loss_and_gradient(dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for loss, y in [
            (bn.CrossEntropy(), np.array([1, 0])),
            (bn.BinaryCrossEntropy(), np.array([[1, 0, 1], [0, 1, 0]])),
        ]:
            value = loss.forward(z, y)
            grad = loss.backward()
            assert np.isfinite(value) and value > 1000
            assert np.all(np.isfinite(grad)) and grad.dtype == dtype


def test_mse_and_mae_values():
    o, y = np.array([[1.0], [3.0]]), np.array([0.0, 1.0])
    assert bn.MSE().forward(o, y) == pytest.approx((1 + 4) / 2)
    assert bn.MAE().forward(o, y) == pytest.approx((1 + 2) / 2)


@pytest.mark.parametrize(
    "targets,match",
    [
        (np.array([0, 3]), r"\[0, 3\)"),
        (np.array([0, 1, 2]), "one row per output row"),
        (np.zeros((2, 4)), "one-hot"),
        (np.array([0.5, 1.0]), "integer class ids"),
    ],
)
def test_cross_entropy_rejects_bad_targets(targets, match):
    with pytest.raises(ValueError, match=match):
        bn.CrossEntropy().forward(np.zeros((2, 3)), targets)


def test_loss_registry():
    assert isinstance(bn.losses.get("cross_entropy"), bn.CrossEntropy)
    assert isinstance(bn.losses.get("mse"), bn.MSE)
    with pytest.raises(ValueError, match="loss must be"):
        bn.losses.get("hinge")
    with pytest.raises(ValueError, match="label_smoothing"):
        bn.CrossEntropy(label_smoothing=1.5)


def test_loss_registry_builds_a_loss_with_its_options():
    smoothed = bn.losses.get("cross_entropy", label_smoothing=0.1)
    assert repr(smoothed) == "CrossEntropy(label_smoothing=0.1)"
    assert bn.losses.get("CrossEntropy", from_logits=False).from_logits is False
    model = bn.Sequential([bn.Dense(2, 3)], seed=0)
    model.compile("cross_entropy", "adam")  # by name, as before
    assert repr(model.loss) == "CrossEntropy()"
    for name, config, message in [
        ("mse", {"label_smoothing": 0.1}, "MSE has no option 'label_smoothing'"),
        ("cross_entropy", {"smoothing": 0.1}, "its options: label_smoothing, from_logits"),
        ("cross_entropy", {"label_smoothing": 1.0}, r"label_smoothing must be .* \[0, 1\)"),
    ]:
        with pytest.raises(bn.ArgumentError, match=message):
            bn.losses.get(name, **config)
    with pytest.raises(bn.ArgumentError, match="for a loss given by name"):
        bn.losses.get(smoothed, label_smoothing=0.2)


def test_each_loss_says_what_outputs_mean():
    z = np.array([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0]])
    ce = bn.CrossEntropy()
    p = ce.probabilities(z)
    np.testing.assert_allclose(p.sum(axis=1), 1)
    assert ce.labels(p).tolist() == [0, 1]
    assert ce.metric("accuracy", z, np.array([0, 2])) == 0.5
    assert ce.chance_level(4) == 0.25 and ce.default_metrics == ("accuracy",)
    assert bn.CrossEntropy(from_logits=False).probabilities(p) is p

    logits = np.array([[-1.0], [2.0], [0.5]])
    bce = bn.BinaryCrossEntropy()
    assert bce.labels(bce.probabilities(logits)).tolist() == [0, 1, 1]  # (N, 1) -> (N,)
    assert bce.metric("accuracy", logits, np.array([0, 1, 0])) == pytest.approx(2 / 3)
    probs = bn.BinaryCrossEntropy(from_logits=False)
    assert probs.metric("accuracy", np.array([[0.2], [0.6], [0.4]]), np.array([0, 1, 0])) == 1
    assert bce.chance_level(2) is None  # depends on the balance of the classes

    mse = bn.MSE()
    assert mse.probabilities(z) is z and mse.labels(z) is z and mse.default_metrics == ()
    assert mse.metric("mae", np.array([[1.0], [3.0]]), np.array([0.0, 1.0])) == 1.5
    with pytest.raises(ValueError, match="metric must be among mae, mse"):
        mse.metric("accuracy", z, z)


@pytest.mark.parametrize(
    "targets,width,match",
    [
        (np.array([0, 3]), 3, r"y must be class ids in \[0, 3\), got values in \[0, 3\]"),
        (np.array([-1, 0]), None, r"\[0, inf\)"),
        (np.array([0.5, 1.0]), 3, "integer class ids"),
        (np.zeros((2, 4)), 3, r"one-hot rows \(N, 3\)"),
    ],
)
def test_cross_entropy_checks_targets_against_the_output_width(targets, width, match):
    with pytest.raises(ValueError, match=match):
        bn.CrossEntropy().check_targets("y", targets, width)
    bn.MSE().check_targets("y", targets, width)  # a regression loss takes any numbers
