"""PyTorch interop: barenet -> nn.Sequential -> barenet is exact, a trained PyTorch network
converts and predicts the same, and the BatchNorm and Softmax conventions line up."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

import barenet as bn
from barenet.errors import ArgumentError, BarenetError
from barenet.interop import from_torch, to_torch
from barenet.pretrained import load_pretrained


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Small networks on a shared 2-core machine: PyTorch's spinning threads only wait."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def torch_out(net, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("name", ["mnist-mlp", "mnist-cnn"])
def test_shipped_networks_round_trip_through_torch_bit_for_bit(name):
    model = load_pretrained(name)
    net = model.to_torch()
    assert isinstance(net, torch.nn.Sequential) and not net.training
    x = np.random.default_rng(0).random((100, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(torch_out(net, x[:, None]), model.forward(x), rtol=1e-5, atol=2e-5)
    back = bn.from_torch(net)
    assert [repr(l) for l in back.layers] == [repr(l) for l in model.layers]
    assert np.array_equal(back.get_weights(), model.get_weights())
    for ours, theirs in zip(model.layers, back.layers, strict=True):
        for a, b in zip(ours.state().values(), theirs.state().values(), strict=True):
            assert np.array_equal(a, b)
    back.compile(loss="cross_entropy")
    assert np.array_equal(back.predict_proba(x), model.predict_proba(x))


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_every_layer_type_round_trips():
    model = bn.Sequential(
        [
            bn.Conv2D(2, 4, 2, padding="same"),  # an even kernel: padded bottom and right
            bn.BatchNorm(4, momentum=0.2, eps=1e-3),
            bn.LeakyReLU(0.1),
            bn.MaxPool2D(3, stride=1),
            bn.Conv2D(4, 3, (2, 3), stride=2, padding=1),
            bn.AvgPool2D(2),
            bn.Tanh(),
            bn.GlobalAvgPool2D(),
            bn.Dense(3, 5),
            bn.BatchNorm(5),
            bn.Sigmoid(),
            bn.Dropout(0.25),
            bn.Dense(5, 4),
            bn.ReLU(),
            bn.Dense(4, 3),
            bn.Softmax(),
        ],
        seed=3,
    )
    model.input_shape = (2, 11, 10)
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if isinstance(layer, bn.BatchNorm):
            layer.running_mean[...] = rng.normal(size=layer.num_features)
            layer.running_var[...] = rng.uniform(0.5, 2, size=layer.num_features)
    x = rng.normal(size=(1, 2, 11, 10)).astype(np.float32)  # batch 1
    net = to_torch(model)
    np.testing.assert_allclose(torch_out(net, x), model.forward(x), rtol=1e-5, atol=1e-6)
    back = from_torch(net)
    assert [repr(l) for l in back.layers] == [repr(l) for l in model.layers]
    assert np.array_equal(back.get_weights(), model.get_weights())
    assert np.array_equal(back.forward(x), model.forward(x))


def test_trained_torch_network_converts_and_predicts_the_same():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 3, padding=1),
        torch.nn.BatchNorm2d(6),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 8, 2, padding="same"),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 16),
        torch.nn.BatchNorm1d(16),
        torch.nn.Tanh(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(16, 3),
    )
    x = torch.randn(64, 1, 10, 10)
    y = torch.randint(0, 3, (64,))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net.train()
    for _ in range(20):  # moves the weights and the running statistics
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    net.eval()
    assert not torch.equal(net[1].running_var, torch.ones(6))
    model = from_torch(net)
    model.compile(loss="cross_entropy")  # logits: predict_proba applies the softmax
    xt = torch.randn(32, 1, 10, 10)
    with torch.no_grad():
        expected = torch.softmax(net(xt), dim=1).numpy()
    assert np.abs(model.predict_proba(xt.numpy()) - expected).max() <= 1e-5
    assert np.array_equal(model.predict(xt.numpy()), expected.argmax(1))


def test_state_dict_fills_a_barenet_architecture():
    net = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(12, 7),
        torch.nn.BatchNorm1d(7),
        torch.nn.ReLU(),
        torch.nn.Linear(7, 2),
    )
    with torch.no_grad():
        net[2].running_mean.uniform_(-1, 1)
    net.eval()
    architecture = bn.Sequential(
        [bn.Flatten(), bn.Dense(12, 7), bn.BatchNorm(7), bn.ReLU(), bn.Dense(7, 2)], seed=5
    )
    model = from_torch(net.state_dict(), architecture)
    assert model is architecture
    x = np.random.default_rng(0).normal(size=(9, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(model.forward(x), torch_out(net, x), atol=1e-5)
    wrong = bn.Sequential([bn.Dense(12, 7), bn.Dense(7, 2)])
    with pytest.raises(ArgumentError, match=r"state_dict module '2' holds .*; layer 1"):
        from_torch(net.state_dict(), wrong)
    with pytest.raises(ArgumentError, match=r"shape \[7, 12\]"):
        from_torch(net.state_dict(), bn.Sequential([bn.Dense(12, 6), bn.BatchNorm(7)]))
    with pytest.raises(ArgumentError, match="needs architecture="):
        from_torch(net.state_dict())


def test_batchnorm_running_statistics_follow_the_same_convention():
    """PyTorch momentum 0.1 means running = 0.9 * running + 0.1 * batch (variance
    unbiased); barenet's momentum means the same, so one training step agrees."""
    torch.manual_seed(1)
    ref = torch.nn.Sequential(torch.nn.BatchNorm2d(3, momentum=0.3, eps=1e-3))
    model = from_torch(ref)
    x = torch.randn(4, 3, 5, 5) * 3 + 1
    ref.train()
    ref(x)
    model.layers[0].forward(x.numpy(), training=True)
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(
            getattr(model.layers[0], name), getattr(ref[0], name).numpy(), rtol=1e-5
        )
    assert model.layers[0].momentum == pytest.approx(0.3) and model.layers[0].eps == 1e-3


def test_softmax_ending_is_kept_and_fused_in_training():
    torch.manual_seed(2)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=1)).eval()
    model = from_torch(net)
    model.compile(loss="cross_entropy")
    assert isinstance(model.layers[-1], bn.Softmax) and model._fused()
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(model.predict_proba(x), torch_out(net, x), atol=1e-6)
    assert isinstance(to_torch(model)[-1], torch.nn.Softmax)


@pytest.mark.parametrize(
    "module, needle",
    [
        (torch.nn.GELU(), "GELU"),
        (torch.nn.Conv2d(1, 2, 3, groups=1, dilation=2), "dilation"),
        (torch.nn.Conv2d(1, 2, 3, padding=(1, 2)), "pads every side alike"),
        (torch.nn.MaxPool2d(2, ceil_mode=True), "ceil_mode"),
        (torch.nn.BatchNorm1d(3, momentum=None), "fixed momentum"),
        (torch.nn.Softmax(dim=0), "Softmax"),
    ],
)
def test_unsupported_modules_are_named(module, needle):
    net = torch.nn.Sequential(torch.nn.Identity(), module)
    with pytest.raises(ArgumentError, match=r"module '1'") as info:
        from_torch(net)
    assert needle in str(info.value)


def test_bad_sources():
    with pytest.raises(ArgumentError, match=r"nn\.Sequential or a state_dict"):
        from_torch(torch.nn.Linear(2, 2))
    with pytest.raises(ArgumentError, match=r"must be followed by nn\.Flatten"):
        from_torch(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1)))


def test_missing_torch_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(BarenetError, match=r"pip install 'barenet\[torch\]'"):
        bn.Sequential([bn.Dense(2, 2)]).to_torch()
