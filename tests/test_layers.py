"""Layer behaviour beyond gradients: shapes, initialisation, dropout, stability, errors."""

import warnings

import numpy as np
import pytest

import barenet as bn


def test_dense_shapes_match_pytorch_linear():
    layer = bn.Dense(784, 128, rng=0)
    assert layer.params["weight"].shape == (128, 784)
    assert layer.params["bias"].shape == (128,)
    assert layer.params["weight"].dtype == np.float32
    y = layer.forward(np.ones((5, 784), dtype=np.float32))
    assert y.shape == (5, 128) and y.dtype == np.float32


def test_dense_matches_torch_linear():
    torch = pytest.importorskip("torch")
    layer = bn.Dense(7, 4, rng=3, dtype=np.float64)
    lin = torch.nn.Linear(7, 4).double()
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(layer.params["weight"]))
        lin.bias.copy_(torch.from_numpy(np.arange(4.0)))
    layer.params["bias"][...] = np.arange(4.0)
    x = np.random.default_rng(0).standard_normal((3, 7))
    tx = torch.from_numpy(x).requires_grad_()
    out = lin(tx)
    dy = np.random.default_rng(1).standard_normal((3, 4))
    out.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(layer.forward(x), out.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.backward(dy), tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.grads["weight"], lin.weight.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.grads["bias"], lin.bias.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("init,std", [("he", np.sqrt(2 / 400)), ("glorot", np.sqrt(2 / 600))])
def test_initialisers_have_the_right_spread(init, std):
    w = bn.Dense(400, 200, init=init, rng=0).params["weight"]
    assert abs(w.std() - std) / std < 0.05
    assert abs(w.mean()) < 0.01 * std * 10


def test_same_seed_same_weights():
    a = bn.Sequential([bn.Dense(3, 4), bn.ReLU(), bn.Dense(4, 2)], seed=7)
    b = bn.Sequential([bn.Dense(3, 4), bn.ReLU(), bn.Dense(4, 2)], seed=7)
    c = bn.Sequential([bn.Dense(3, 4), bn.ReLU(), bn.Dense(4, 2)], seed=8)
    assert np.array_equal(a.get_weights(), b.get_weights())
    assert not np.array_equal(a.get_weights(), c.get_weights())


def test_dropout_is_inverted_and_off_at_inference():
    layer = bn.Dropout(0.25, rng=0)
    x = np.ones((2000, 50), dtype=np.float32)
    assert layer.forward(x) is x
    y = layer.forward(x, training=True)
    assert y.dtype == np.float32
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.01
    assert abs(y.mean() - 1.0) < 0.01
    dx = layer.backward(np.ones_like(x))
    assert np.array_equal(dx == 0, y == 0)


def test_sigmoid_and_softmax_are_stable_and_silent():
    x = np.array([[-1e4, -50.0, 0.0, 50.0, 1e4]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = bn.Sigmoid().forward(x)
        p = bn.Softmax().forward(x)
        t = bn.Tanh().forward(x)
    assert np.all(np.isfinite(s)) and s[0, 0] == 0 and s[0, -1] == 1 and s[0, 2] == 0.5
    assert np.all(np.isfinite(p)) and p[0, -1] == 1 and abs(p.sum() - 1) < 1e-6
    assert np.all(np.isfinite(t))


def test_softmax_rows_sum_to_one():
    x = np.random.default_rng(0).standard_normal((10, 7)).astype(np.float32) * 20
    p = bn.Softmax().forward(x)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)
    assert np.array_equal(p.argmax(axis=1), x.argmax(axis=1))


def test_leaky_relu_values():
    y = bn.LeakyReLU(0.1).forward(np.array([[-2.0, 0.5]]))
    np.testing.assert_allclose(y, [[-0.2, 0.5]])


@pytest.mark.parametrize(
    "make,arg",
    [
        (lambda: bn.Dense(0, 3), "in_features"),
        (lambda: bn.Dense(3, -1), "out_features"),
        (lambda: bn.Dense(3, 2, weight_l2=-1), "weight_l2"),
        (lambda: bn.Dense(3, 2, init="nope"), "init"),
        (lambda: bn.Dropout(1.0), "rate"),
        (lambda: bn.LeakyReLU(-1), "negative_slope"),
        (lambda: bn.activations.get("swish"), "activation"),
    ],
)
def test_bad_layer_arguments_name_the_argument(make, arg):
    with pytest.raises(ValueError, match=arg):
        make()


def test_dense_rejects_wrong_input_width():
    with pytest.raises(ValueError, match=r"\(N, 3\).*\(2, 4\)"):
        bn.Dense(3, 2).forward(np.zeros((2, 4), dtype=np.float32))


def test_flatten_restores_shape():
    layer = bn.Flatten()
    x = np.zeros((2, 3, 4), dtype=np.float32)
    assert layer.forward(x).shape == (2, 12)
    assert layer.backward(np.zeros((2, 12))).shape == (2, 3, 4)
