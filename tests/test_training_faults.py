"""Training when things go wrong: a NaN mid-epoch rolls everything back, and hostile data
passed to fit / evaluate / predict gets a barenet error, never a raw NumPy one."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import barenet as bn
from barenet.datasets import spiral


def blobs() -> tuple[np.ndarray, np.ndarray]:
    """300 points in three well-separated clusters: a network learns them in one epoch."""
    rng = np.random.default_rng(0)
    y = np.arange(300) % 3
    centres = np.array([[0, 2], [2, -1], [-2, -1]], np.float32)
    return (centres[y] + 0.5 * rng.standard_normal((300, 2))).astype(np.float32), y


def bn_model(optimizer: bn.optim.Optimizer) -> bn.Sequential:
    """A small classifier with BatchNorm, whose running statistics training changes."""
    layers = [bn.Dense(2, 16), bn.BatchNorm(16), bn.ReLU(), bn.Dense(16, 3)]
    model = bn.Sequential(layers, seed=0)
    model.compile(optimizer=optimizer)
    return model


def everything(model: bn.Sequential) -> dict[str, object]:
    """Copies of every array and number a training step changes."""
    opt = model.optimizer
    assert opt is not None
    state = {"weights": model.get_weights()}
    for i, layer in enumerate(model.layers):
        for name, a in layer.state().items():
            state[f"{i}.{name}"] = a.copy()
    state["iterations"] = opt.iterations
    state["lr"] = opt.current_lr
    for i, slots in enumerate(opt.state):
        for name, a in slots.items():
            state[f"optimizer.{i}.{name}"] = a.copy()
    return state


def assert_same(actual: dict[str, object], expected: dict[str, object]) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(actual[key], value, err_msg=key)
        else:
            assert actual[key] == value, key


class Recorder(bn.Callback):
    """Keeps ``everything`` at the start of each epoch."""

    def __init__(self) -> None:
        self.at_start: dict[int, dict[str, object]] = {}

    def on_epoch_begin(self, epoch: int, logs: dict[str, float]) -> None:
        self.at_start[epoch] = everything(self.model)


def nan_at(epoch: int, batch: int):
    """An ``augment`` that passes batches through, except one it fills with NaN."""
    calls = {"n": 0}

    def augment(xb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        calls["n"] += 1
        return np.full_like(xb, np.nan) if calls["n"] == epoch * 100 + batch else xb

    return augment


OPTIMIZERS = {
    "adam": lambda: bn.Adam(lr=0.01),
    "sgd-momentum": lambda: bn.SGD(lr=0.05, momentum=0.9, nesterov=True),
    "adam-cosine": lambda: bn.Adam(lr=bn.CosineDecay(0.01, total_steps=500)),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_nan_mid_epoch_restores_weights_buffers_and_optimizer(name):
    x, y = blobs()  # 100 batches of 3 per epoch
    model = bn_model(OPTIMIZERS[name]())
    recorder = Recorder()
    # epoch 2 (index 1), batch 40: after 139 steps that moved every moment and statistic
    with pytest.raises(bn.TrainingError, match=r"at epoch 2, batch 40; weights restored"):
        model.fit(
            x,
            y,
            epochs=3,
            batch_size=3,
            seed=0,
            augment=nan_at(1, 40),
            callbacks=[recorder],
            verbose=0,
        )
    start = recorder.at_start[1]
    assert start["iterations"] == 100
    assert_same(everything(model), start)

    before = model.evaluate(x, y)["loss"]
    model.optimizer.lr = model.optimizer.current_lr / 2  # the retry: a smaller rate
    history = model.fit(x, y, epochs=2, batch_size=3, seed=1, verbose=0)
    assert all(math.isfinite(v) for v in history["loss"])
    after = everything(model)
    assert all(np.isfinite(a).all() for a in after.values() if isinstance(a, np.ndarray))
    assert after["iterations"] == 300
    result = model.evaluate(x, y)
    assert result["loss"] < before and result["accuracy"] > 0.95


def test_weights_that_overflow_on_the_last_step_of_an_epoch_are_rolled_back():
    # One step per epoch: the step overflows the weights, yet the epoch's loss (taken
    # before the step) is finite. The next epoch must not start from infinite weights.
    x, y = spiral(20, 3, rng=0)
    model = bn.Sequential([bn.Dense(2, 8), bn.ReLU(), bn.Dense(8, 3)], seed=0)
    model.compile(optimizer=bn.SGD(lr=1e300))
    start = everything(model)
    with pytest.raises(bn.TrainingError, match="NaN or infinite at epoch 1, batch 1"):
        model.fit(x, y, epochs=3, batch_size=len(x), verbose=0)
    assert_same(everything(model), start)


class SetsWeightsAtTheEnd(bn.Callback):
    """Like EarlyStopping(restore_best=True) or weight averaging: sets weights when
    training ends."""

    def on_train_end(self, logs: dict[str, float]) -> None:
        self.model.set_weights(np.zeros(self.model.num_params, np.float32))


def test_callbacks_ending_training_do_not_undo_the_rollback():
    x, y = blobs()
    model = bn_model(bn.Adam(lr=0.01))
    recorder = Recorder()
    with pytest.raises(bn.TrainingError):
        model.fit(
            x,
            y,
            epochs=2,
            batch_size=3,
            augment=nan_at(1, 5),
            callbacks=[recorder, SetsWeightsAtTheEnd()],
            verbose=0,
        )
    assert_same(everything(model), recorder.at_start[1])


# ---- hostile data ------------------------------------------------------------------------
DTYPES = [
    np.bool_,
    np.int8,
    np.uint8,
    np.int64,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
    np.complex64,
    np.dtype("U3"),
    np.dtype("S2"),
    np.dtype("datetime64[s]"),
]
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
OBJECTS = st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=3))
arrays = st.one_of(
    st.sampled_from(DTYPES).flatmap(lambda dtype: hnp.arrays(dtype, SHAPES)),
    hnp.arrays(object, SHAPES, elements=OBJECTS),
    hnp.arrays(np.float32, st.tuples(st.integers(0, 5), st.just(3))),  # the right width
)
ragged = st.lists(st.lists(st.floats(-2, 2), max_size=4), min_size=1, max_size=5)
data = st.one_of(arrays, ragged, OBJECTS, st.dictionaries(st.text(max_size=2), OBJECTS))
seeds = st.one_of(st.none(), st.integers(-3, 3), st.floats(), st.text(max_size=2), st.booleans())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["fit", "evaluate", "predict", "predict_proba"]),
    x=data,
    y=data,
    seed=seeds,
)
def test_hostile_data_gets_barenet_errors_only(method, x, y, seed):
    model = bn.Sequential([bn.Dense(3, 4), bn.ReLU(), bn.Dense(4, 3)], seed=0)
    model.compile(optimizer=bn.Adam(lr=0.01))
    try:
        if method == "fit":
            model.fit(x, y, epochs=1, batch_size=2, seed=seed, verbose=0)
        elif method == "evaluate":
            model.evaluate(x, y)
        else:
            getattr(model, method)(x)
    except bn.BarenetError as e:
        message = str(e)
        assert "\n" not in message
        assert message.split(" ", 1)[0] in {"x", "y", "seed", "Dense(3,", "loss"}, message


@pytest.mark.parametrize(
    ("x", "y", "needle"),
    [
        (np.zeros((0, 3)), np.zeros(0), "x must be a non-empty batch"),
        (np.zeros((4, 0)), np.zeros(4), "x must be a non-empty batch"),
        (np.array([["a", "b", "c"]] * 4), np.zeros(4), "x must hold real numbers"),
        (np.ones((4, 3), dtype=object), np.zeros(4), "got dtype object"),
        ([[1.0, 2.0, 3.0], [1.0]], [0, 1], "x must be an array of numbers"),
        (np.ones((4, 3), dtype=bool), np.zeros(4), "got dtype bool"),
        (np.ones((4, 3), dtype=complex), np.zeros(4), "got dtype complex128"),
        (np.full((4, 3), 1e300), np.zeros(4), "too large for float32"),
        (np.zeros((4, 3)), np.zeros((4, 1, 1)), "y must hold one target per sample"),
        (np.zeros((4, 3)), np.int64(1), "got shape ()"),
        (np.zeros((4, 3)), np.array(["a"] * 4), "y must hold numbers"),
        (np.zeros((4, 3)), np.zeros(3), "4 samples vs 3 targets"),
        (np.zeros((4, 3)), [0, 1, 2, 3], "class ids in [0, 3), got values in [0, 3]"),
        (np.zeros((4, 3)), [0, 1, np.nan, 1], "y contains NaN"),
    ],
)
def test_bad_data_is_named_in_one_line(x, y, needle):
    model = bn.Sequential([bn.Dense(3, 4), bn.ReLU(), bn.Dense(4, 3)], seed=0)
    model.compile(optimizer=bn.Adam())
    with pytest.raises(bn.ArgumentError) as fit_error:
        model.fit(x, y, verbose=0)
    assert needle in str(fit_error.value)
    with pytest.raises(bn.ArgumentError, match=r"^[xy] "):
        model.evaluate(x, y)
    assert model.input_shape is None  # nothing was learned from refused data


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_bad_seeds_are_refused(seed):
    x, y = spiral(5, 3, rng=0)
    model = bn.Sequential([bn.Dense(2, 3)], seed=0)
    model.compile()
    with pytest.raises(bn.ArgumentError, match=f"seed must be an integer >= 0, got {seed!r}"):
        model.fit(x, y, seed=seed, verbose=0)


@pytest.mark.parametrize(
    ("x", "needle"),
    [
        (np.array([[0.0, np.nan, 0.0], [1.0, 1.0, 1.0]]), "x contains NaN or infinite values"),
        (np.array([[0.0, 0.0, 0.0], [np.inf, 1.0, 1.0]]), "x contains NaN or infinite values"),
        (np.full((2, 3), 1e300), "too large for float32"),
        (np.array([[0.0, np.nan, 0.0]], dtype=np.float32), "x contains NaN"),
    ],
)
@pytest.mark.parametrize("batch_size", [1, 1024])
def test_predict_names_a_non_finite_input(x, needle, batch_size):
    """predict checks its outputs rather than scanning the inputs first; a NaN or infinite
    input still gets its own message, whether it is batched or not."""
    model = bn.Sequential([bn.Dense(3, 4), bn.ReLU(), bn.Dense(4, 3)], seed=0)
    model.compile(optimizer=bn.Adam())
    for method in (model.predict, model.predict_proba):
        with pytest.raises(bn.ArgumentError, match=needle):
            method(x, batch_size=batch_size)
