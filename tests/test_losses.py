"""Losses: worked values, stability for huge logits, target formats and errors."""

import warnings

import numpy as np
import pytest

import barenet as bn


def test_cross_entropy_worked_example():
    # logits [0, ln 3] -> softmax [1/4, 3/4]; target class 1 -> loss -ln(3/4)
    logits = np.array([[0.0, np.log(3.0)]])
    loss = bn.CrossEntropy()
    assert loss.forward(logits, np.array([1])) == pytest.approx(-np.log(0.75))
    np.testing.assert_allclose(loss.backward(), [[0.25, -0.25]])  # (p - y) / N


def test_cross_entropy_matches_torch_with_label_smoothing():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    z = rng.standard_normal((8, 5))
    y = rng.integers(0, 5, 8)
    tz = torch.from_numpy(z).requires_grad_()
    ref = torch.nn.functional.cross_entropy(tz, torch.from_numpy(y), label_smoothing=0.1)
    ref.backward()
    loss = bn.CrossEntropy(label_smoothing=0.1)
    assert loss.forward(z, y) == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(loss.backward(), tz.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_bce_matches_torch():
    torch = pytest.importorskip("torch")
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
