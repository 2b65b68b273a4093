"""Conv2D and the pooling layers: against direct loops, central differences and PyTorch."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import barenet as bn
from barenet.architectures import cnn

RNG = np.random.default_rng(0)

# (in, out, kernel, stride, padding, batch, height, width): strides, padding, odd sizes,
# a non-square kernel, batch 1, an even kernel with "same" padding, and padding wider
# than the kernel (whole windows of zeros at the edges).
CONV_CASES = [
    (3, 4, 3, 1, 0, 2, 7, 6),
    (2, 2, 4, 1, "same", 2, 6, 5),
    (2, 3, 2, 2, 3, 2, 4, 5),
    (2, 3, 3, 2, 1, 2, 9, 8),
    (1, 2, (2, 3), 1, "same", 1, 5, 6),
    (3, 2, 5, 3, 2, 1, 11, 10),
    (2, 2, 1, 1, 0, 3, 4, 5),
]


def loop_conv(x, w, b, stride, pads):
    """Cross-correlation written as plain loops over every output value."""
    top, bottom, left, right = pads
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    n, _, h, wd = xp.shape
    o, _, kh, kw = w.shape
    ho, wo = (h - kh) // stride + 1, (wd - kw) // stride + 1
    y = np.zeros((n, o, ho, wo))
    for i in range(n):
        for f in range(o):
            for r in range(ho):
                for s in range(wo):
                    patch = xp[i, :, r * stride : r * stride + kh, s * stride : s * stride + kw]
                    y[i, f, r, s] = np.sum(patch * w[f]) + b[f]
    return y


def loop_pool(x, k, stride, reduce):
    n, c, h, w = x.shape
    ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
    y = np.zeros((n, c, ho, wo))
    for i in range(n):
        for j in range(c):
            for r in range(ho):
                for s in range(wo):
                    y[i, j, r, s] = reduce(
                        x[i, j, r * stride : r * stride + k, s * stride : s * stride + k]
                    )
    return y


def pads_of(kernel, padding):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    if padding == "same":
        return ((kh - 1) // 2, kh // 2, (kw - 1) // 2, kw // 2)
    return (padding,) * 4


@pytest.mark.parametrize(("cin", "cout", "k", "s", "p", "n", "h", "w"), CONV_CASES)
def test_conv_forward_matches_loops(cin, cout, k, s, p, n, h, w):
    layer = bn.Conv2D(cin, cout, k, s, p, rng=1, dtype=np.float64)
    layer.params["bias"][...] = RNG.standard_normal(cout)
    x = RNG.standard_normal((n, cin, h, w))
    y = layer.forward(x)
    expected = loop_conv(x, layer.params["weight"], layer.params["bias"], s, pads_of(k, p))
    assert y.shape == expected.shape == (n, *layer.output_shape((cin, h, w)))
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("cin", "cout", "k", "s", "p", "n", "h", "w"), CONV_CASES)
def test_conv_gradients(cin, cout, k, s, p, n, h, w):
    layer = bn.Conv2D(cin, cout, k, s, p, rng=2, dtype=np.float64)
    errors = bn.check_grad(layer, RNG.standard_normal((n, cin, h, w)))
    assert set(errors) == {"input", "weight", "bias"}
    assert max(errors.values()) < 1e-6, errors


def test_conv_takes_single_channel_images_without_channel_axis():
    layer = bn.Conv2D(1, 3, 3, padding=1, rng=0, dtype=np.float64)
    x = RNG.standard_normal((2, 6, 5))
    y4 = layer.forward(x[:, None])
    y = layer.forward(x)
    np.testing.assert_array_equal(y, y4)
    dx = layer.backward(np.ones_like(y))
    assert dx.shape == x.shape
    assert max(bn.check_grad(layer, x).values()) < 1e-6
    assert layer.output_shape((6, 5)) == (3, 6, 5)


def test_conv_result_does_not_depend_on_memory_layout():
    layer = bn.Conv2D(3, 2, 3, padding=1, rng=0)
    x = RNG.standard_normal((4, 3, 5, 5)).astype(np.float32)
    dy = RNG.standard_normal((4, 2, 5, 5)).astype(np.float32)
    expected_y, expected_dx = layer.forward(x), layer.backward(dy)
    for axes in [(1, 0, 2, 3), (1, 2, 3, 0), (0, 2, 3, 1)]:
        back = np.argsort(axes)
        relaid = np.ascontiguousarray(x.transpose(axes)).transpose(back)
        dy_relaid = np.ascontiguousarray(dy.transpose(axes)).transpose(back)
        np.testing.assert_allclose(layer.forward(relaid), expected_y, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(layer.backward(dy_relaid), expected_dx, rtol=1e-6, atol=1e-6)


def test_param_backward_gives_the_same_parameter_gradients():
    layer = bn.Conv2D(2, 3, 3, stride=2, padding=1, rng=0, dtype=np.float64)
    x = RNG.standard_normal((2, 2, 7, 7))
    dy = RNG.standard_normal(layer.forward(x).shape)
    layer.backward(dy)
    full = {k: g.copy() for k, g in layer.grads.items()}
    for g in layer.grads.values():
        g[...] = 0
    layer.param_backward(dy)
    for k, g in layer.grads.items():
        np.testing.assert_array_equal(g, full[k])


def test_conv_keeps_float32():
    layer = bn.Conv2D(2, 3, 3, padding="same", rng=0)
    y = layer.forward(RNG.random((2, 2, 6, 6), dtype=np.float32))
    assert y.dtype == np.float32
    assert layer.backward(np.ones_like(y)).dtype == np.float32


def test_conv_matches_torch():
    torch = pytest.importorskip("torch")
    f = torch.nn.functional
    for cin, cout, k, s, p, n, h, w in CONV_CASES:
        layer = bn.Conv2D(cin, cout, k, s, p, rng=3, dtype=np.float64)
        layer.params["bias"][...] = RNG.standard_normal(cout)
        x = RNG.standard_normal((n, cin, h, w))
        y = layer.forward(x)
        dy = RNG.standard_normal(y.shape)
        dx = layer.backward(dy)
        xt = torch.tensor(x, requires_grad=True)
        wt = torch.tensor(layer.params["weight"], requires_grad=True)
        bt = torch.tensor(layer.params["bias"], requires_grad=True)
        with warnings.catch_warnings():  # torch notes that an even 'same' kernel pads a copy
            warnings.simplefilter("ignore", UserWarning)
            yt = f.conv2d(xt, wt, bt, stride=s, padding=p)
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-12)
        np.testing.assert_allclose(layer.grads["weight"], wt.grad.numpy(), atol=1e-12)
        np.testing.assert_allclose(layer.grads["bias"], bt.grad.numpy(), atol=1e-12)


POOL_CASES = [(2, None, 2, 3, 8, 6), (2, None, 1, 2, 7, 9), (3, 2, 2, 2, 9, 7), (3, 1, 1, 1, 5, 4)]


@pytest.mark.parametrize(("k", "s", "n", "c", "h", "w"), POOL_CASES)
@pytest.mark.parametrize(
    ("cls", "reduce"), [(bn.MaxPool2D, np.max), (bn.AvgPool2D, np.mean)], ids=["max", "avg"]
)
def test_pool_forward_matches_loops_and_gradients(cls, reduce, k, s, n, c, h, w):
    layer = cls(k, s)
    x = RNG.standard_normal((n, c, h, w))
    y = layer.forward(x)
    expected = loop_pool(x, k, k if s is None else s, reduce)
    assert y.shape == (n, *layer.output_shape((c, h, w)))
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    errors = bn.check_grad(layer, x)
    assert errors["input"] < 1e-6, errors


def test_max_pool_gives_a_tied_window_gradient_once():
    layer = bn.MaxPool2D(2)
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 3, 3] = 1.0
    dx = layer.backward(np.ones(layer.forward(x).shape))
    # One pixel per window receives the gradient: the first maximum, or the unique one.
    assert dx.sum() == 4
    assert dx[0, 0, 0, 0] == dx[0, 0, 0, 2] == dx[0, 0, 2, 0] == dx[0, 0, 3, 3] == 1


def test_max_pool_matches_torch_with_overlapping_windows():
    torch = pytest.importorskip("torch")
    x = np.round(RNG.standard_normal((2, 3, 9, 8)), 1)  # rounding makes ties
    layer = bn.MaxPool2D(3, 2)
    y = layer.forward(x)
    dy = RNG.standard_normal(y.shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.max_pool2d(xt, 3, 2)
    yt.backward(torch.tensor(dy))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_allclose(layer.backward(dy), xt.grad.numpy(), atol=1e-12)


def test_global_avg_pool():
    layer = bn.GlobalAvgPool2D()
    x = RNG.standard_normal((1, 3, 5, 3))
    np.testing.assert_allclose(layer.forward(x), x.mean(axis=(2, 3)))
    assert layer.output_shape((3, 5, 3)) == (3,)
    assert bn.check_grad(layer, x)["input"] < 1e-6


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: bn.Conv2D(0, 4, 3), "in_channels must be a positive integer, got 0"),
        (lambda: bn.Conv2D(1, 4, 3, stride=2, padding="same"), "padding='same' needs stride=1"),
        (lambda: bn.Conv2D(1, 4, 3, padding=-1), "padding must be >= 0 or 'same', got -1"),
        (lambda: bn.Conv2D(1, 4, 3, padding="full"), "got 'full'"),
        (lambda: bn.Conv2D(1, 4, (3, 3, 3)), "kernel_size must be an int or a pair"),
        (lambda: bn.MaxPool2D(2, stride=0), "stride must be a positive integer, got 0"),
        (lambda: bn.AvgPool2D(1.5), "kernel_size must be a positive integer, got 1.5"),
    ],
)
def test_bad_arguments_are_named(make, message):
    with pytest.raises(bn.ArgumentError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_bad_input_shapes_are_refused():
    with pytest.raises(bn.ArgumentError, match=r"expects input of shape \(N, 3, H, W\)"):
        bn.Conv2D(3, 2, 3).forward(np.zeros((2, 2, 5, 5)))
    with pytest.raises(bn.ArgumentError, match=r"needs images of at least \(3, 3\)"):
        bn.Conv2D(1, 2, 3).forward(np.zeros((2, 1, 2, 5)))
    with pytest.raises(bn.ArgumentError, match="needs images of at least"):
        bn.MaxPool2D(2).forward(np.zeros((1, 1, 1, 4)))
    with pytest.raises(bn.ArgumentError, match=r"\(N, C, H, W\)"):
        bn.GlobalAvgPool2D().forward(np.zeros((2, 4)))


def test_cnn_builder_layers_and_errors():
    model = cnn(channels=(4, 8, 8), hidden=(16,), dropout=0.0, seed=0)
    names = [type(layer).__name__ for layer in model.layers]
    assert names.count("Conv2D") == 3 and names.count("MaxPool2D") == 2
    assert names.count("BatchNorm") == 3 and "Dropout" not in names
    assert model.forward(np.zeros((2, 28, 28), dtype=np.float32)).shape == (2, 10)
    with pytest.raises(bn.ArgumentError, match=r"channels must hold positive integers, got \[\]"):
        cnn(channels=())
    with pytest.raises(bn.ArgumentError, match="too small"):
        cnn(channels=(4, 8, 16, 32, 64), input_shape=(8, 8))


def test_small_cnn_learns_digits(mnist):
    (x, y), _ = mnist
    x = bn.datasets.scale(x[:2500])
    y = y[:2500]
    model = cnn(channels=(8, 16), hidden=(32,), dropout=0.0, seed=0)
    model.compile("cross_entropy", bn.Adam(lr=3e-3))
    model.fit(x[:2000], y[:2000], epochs=2, batch_size=50, seed=0, verbose=0)
    assert model.evaluate(x[2000:], y[2000:])["accuracy"] > 0.88


@pytest.mark.parametrize("cls", [bn.MaxPool2D, bn.AvgPool2D])
@pytest.mark.parametrize(("kernel", "stride"), [((2, 3), None), ((3, 2), None), ((1, 3), 2)])
def test_pools_with_non_square_kernels_match_torch(cls, kernel, stride):
    """With stride None a (2, 3) window moved 2 across instead of 3 in the backward pass."""
    import torch

    x = RNG.standard_normal((2, 3, 7, 9))
    layer = cls(kernel, stride)
    y = layer.forward(x)
    dy = RNG.standard_normal(y.shape)
    xt = torch.tensor(x, requires_grad=True)
    pool = torch.nn.functional.max_pool2d if cls is bn.MaxPool2D else torch.nn.functional.avg_pool2d
    yt = pool(xt, kernel, stride)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(layer.backward(dy), xt.grad.numpy(), atol=1e-12)
    assert bn.check_grad(cls(kernel, stride), x)["input"] < 1e-6


def test_the_pooling_layers_are_found_where_they_always_were():
    """They live in barenet.pooling; code that imports them from barenet.conv still works."""
    from barenet import conv, pooling

    for name in ("MaxPool2D", "AvgPool2D", "GlobalAvgPool2D"):
        assert getattr(conv, name) is getattr(pooling, name) is getattr(bn, name)
        assert name in conv.__all__


def test_cnn_pools_before_relu_and_computes_what_the_other_order_does():
    """cnn() builds Conv, BatchNorm, MaxPool2D, ReLU; max pooling and ReLU commute, so
    outputs and gradients equal those of Conv, BatchNorm, ReLU, MaxPool2D."""
    model = cnn(channels=(4, 6), hidden=(8,), dropout=0.0, seed=0)
    names = [type(layer).__name__ for layer in model.layers]
    assert names[:8] == ["Conv2D", "BatchNorm", "MaxPool2D", "ReLU"] * 2
    swapped = list(model.layers)
    for i in (2, 6):
        swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
    x = np.round(RNG.standard_normal((3, 1, 28, 28)), 1).astype(np.float32)
    dy = RNG.standard_normal((3, 10)).astype(np.float32)

    def run(layers):
        out = x
        for layer in layers:
            out = layer.forward(out, training=True)
        grad = dy
        for layer in reversed(layers):
            grad = layer.backward(grad)
        return out, grad, [{k: g.copy() for k, g in m.grads.items()} for m in model.layers]

    y, dx, grads = run(model.layers)
    y_other, dx_other, grads_other = run(swapped)
    np.testing.assert_array_equal(y_other, y)
    np.testing.assert_array_equal(dx_other, dx)
    for mine, theirs in zip(grads, grads_other, strict=True):
        for k, g in mine.items():
            np.testing.assert_array_equal(theirs[k], g)
