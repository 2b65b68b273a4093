"""BatchNorm: batch statistics in training, running statistics at inference, saved with
the model; gradients by central differences and against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import barenet as bn

RNG = np.random.default_rng(0)
SHAPES = [(6, 3), (1, 3, 4, 5), (3, 2, 3, 3)]  # dense, conv with batch 1, conv


def randomised(num_features: int) -> bn.BatchNorm:
    layer = bn.BatchNorm(num_features, dtype=np.float64)
    layer.params["weight"][...] = RNG.standard_normal(num_features)
    layer.params["bias"][...] = RNG.standard_normal(num_features)
    layer.running_mean[...] = RNG.standard_normal(num_features)
    layer.running_var[...] = RNG.random(num_features) + 0.5
    return layer


def per_feature(x: np.ndarray) -> np.ndarray:
    """(C, M): every value of each feature, whatever the input's rank."""
    return np.moveaxis(x, 1, 0).reshape(x.shape[1], -1)


@pytest.mark.parametrize("shape", SHAPES)
def test_training_normalises_each_feature_over_the_batch(shape):
    layer = bn.BatchNorm(shape[1], dtype=np.float64)
    x = RNG.standard_normal(shape) * 5 + 3
    y = per_feature(layer.forward(x, training=True))
    np.testing.assert_allclose(y.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=1), 1, rtol=1e-3)  # var / (var + eps)


@pytest.mark.parametrize("shape", SHAPES)
def test_inference_uses_running_statistics(shape):
    layer = randomised(shape[1])
    x = RNG.standard_normal(shape)
    c = (1, shape[1]) + (1,) * (len(shape) - 2)
    expected = (x - layer.running_mean.reshape(c)) / np.sqrt(layer.running_var.reshape(c) + 1e-5)
    expected = expected * layer.params["weight"].reshape(c) + layer.params["bias"].reshape(c)
    before = layer.running_mean.copy()
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12)
    np.testing.assert_array_equal(layer.running_mean, before)  # inference leaves them be
    assert not np.allclose(layer.forward(x, training=True), expected)


def test_running_statistics_follow_momentum_with_unbiased_variance():
    layer = bn.BatchNorm(2, momentum=0.25, dtype=np.float64)
    x = RNG.standard_normal((4, 2, 3, 3))
    layer.forward(x, training=True)
    values = per_feature(x)
    np.testing.assert_allclose(layer.running_mean, 0.25 * values.mean(axis=1))
    np.testing.assert_allclose(layer.running_var, 0.75 + 0.25 * values.var(axis=1, ddof=1))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_gradients(shape, training):
    errors = bn.check_grad(randomised(shape[1]), RNG.standard_normal(shape), training=training)
    assert set(errors) == {"input", "weight", "bias"}
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_matches_torch(shape, training):
    torch = pytest.importorskip("torch")
    layer = randomised(shape[1])
    ref = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(shape[1]).double()
    with torch.no_grad():
        for name in ("weight", "bias"):
            getattr(ref, name).copy_(torch.from_numpy(layer.params[name]))
        for name, value in layer.state().items():
            getattr(ref, name).copy_(torch.from_numpy(value))
    ref.train(training)
    x = RNG.standard_normal(shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = ref(xt)
    y = layer.forward(x, training=training)
    dy = RNG.standard_normal(y.shape)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(layer.backward(dy), xt.grad.numpy(), atol=1e-12)
    for name in ("weight", "bias"):
        np.testing.assert_allclose(layer.grads[name], getattr(ref, name).grad.numpy(), atol=1e-12)
    for name, value in layer.state().items():
        np.testing.assert_allclose(value, getattr(ref, name).numpy(), atol=1e-12)


def test_running_statistics_are_saved_and_restored(tmp_path):
    layers = [bn.Conv2D(1, 3, 3, padding=1), bn.BatchNorm(3), bn.ReLU(), bn.Flatten()]
    layers += [bn.Dense(3 * 6 * 6, 4), bn.BatchNorm(4), bn.ReLU(), bn.Dense(4, 2)]
    model = bn.Sequential(layers, seed=0)
    model.compile("cross_entropy", bn.Adam(lr=1e-2))
    x = RNG.random((64, 6, 6), dtype=np.float32)
    y = (x[:, :3].sum(axis=(1, 2)) > x[:, 3:].sum(axis=(1, 2))).astype(np.int64)
    model.fit(x, y, epochs=2, batch_size=16, seed=0, verbose=0)
    norms = [layer for layer in model.layers if isinstance(layer, bn.BatchNorm)]
    assert all(not np.allclose(n.running_var, 1) for n in norms)  # training moved them

    loaded = bn.load_model(model.save(tmp_path / "bn"))
    loaded_norms = [layer for layer in loaded.layers if isinstance(layer, bn.BatchNorm)]
    for a, b in zip(norms, loaded_norms, strict=True):
        np.testing.assert_array_equal(a.running_mean, b.running_mean)
        np.testing.assert_array_equal(a.running_var, b.running_var)
    np.testing.assert_array_equal(model.predict_proba(x), loaded.predict_proba(x))
    with np.load(tmp_path / "bn.npz", allow_pickle=False) as npz:
        assert {"state/1/running_mean", "state/1/running_var", "state/5/running_var"} <= set(
            npz.files
        )


def test_bad_arguments_and_inputs():
    with pytest.raises(bn.ArgumentError, match="num_features must be a positive integer, got 0"):
        bn.BatchNorm(0)
    with pytest.raises(bn.ArgumentError, match=r"momentum must be a number in \(0, 1\], got 1.5"):
        bn.BatchNorm(3, momentum=1.5)
    with pytest.raises(bn.ArgumentError, match="eps must be a finite number > 0, got 0"):
        bn.BatchNorm(3, eps=0)
    with pytest.raises(bn.ArgumentError, match=r"expects input of shape \(N, 3\)"):
        bn.BatchNorm(3).forward(np.zeros((2, 4)))
    with pytest.raises(bn.ArgumentError, match="more than one value per feature"):
        bn.BatchNorm(3).forward(np.zeros((1, 3)), training=True)


def test_early_stopping_restores_the_running_statistics_with_the_weights():
    rng = np.random.default_rng(0)
    y = np.arange(400) % 3
    x = (np.array([[0, 2], [2, -1], [-2, -1]])[y] + rng.standard_normal((400, 2))).astype(
        np.float32
    )
    model = bn.Sequential([bn.Dense(2, 16), bn.BatchNorm(16), bn.ReLU(), bn.Dense(16, 3)], seed=0)
    model.compile(optimizer=bn.SGD(lr=2.0))  # high enough for the validation loss to bounce
    stopper = bn.EarlyStopping(monitor="val_loss", patience=1)
    model.fit(x, y, epochs=30, batch_size=8, validation_split=0.25, callbacks=[stopper], verbose=0)
    assert stopper.stopped_epoch is not None and stopper.best_epoch < stopper.stopped_epoch
    # at inference BatchNorm uses its running statistics: they must be the best epoch's too
    assert model.evaluate(x[-100:], y[-100:])["loss"] == pytest.approx(stopper.best, rel=1e-5)
