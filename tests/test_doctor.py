"""barenet.doctor: each planted bug is named with its layer and cause; healthy networks
(the shipped ones and random ones of every built-in layer) get a clean report; fit refuses
a layer that breaks the in-place contract; the Monitor callback records and warns."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import barenet as bn
from barenet.cli import main
from barenet.datasets import scale
from barenet.pretrained import load_pretrained


def blobs(n=256, classes=4, shape=(6,), seed=0, spread=0.5):
    """Labelled clusters: the label of a point is the centre it lies around."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, *shape))
    y = rng.integers(0, classes, n)
    x = centres[y] + spread * rng.standard_normal((n, *shape))
    return x.astype(np.float32), y


def mlp(*hidden_layers, classes=4, optimizer=None, seed=0):
    model = bn.Sequential([bn.Dense(6, 16), *hidden_layers, bn.Dense(16, classes)], seed=seed)
    model.compile(loss="cross_entropy", optimizer=optimizer or bn.Adam(1e-3))
    return model


# ---- planted bugs ---------------------------------------------------------------------
class AveragedTwiceDense(bn.Dense):
    """Divides the weight gradient by N although the loss already averaged over the batch."""

    def param_backward(self, dy):
        super().param_backward(dy)
        self.grads["weight"] /= len(dy)


class MasklessReLU(bn.ReLU):
    """Forgets the mask: the gradient passes where the input was negative too."""

    def backward(self, dy):
        return dy


class ReplacingDense(bn.Dense):
    """Assigns new gradient arrays instead of writing into the bound ones."""

    def param_backward(self, dy):
        self.grads["weight"] = dy.T @ self._x
        self.grads["bias"] = dy.sum(axis=0)


class UnflatteningFlatten(bn.Flatten):
    """Forgets to restore the input's shape on the way back."""

    def backward(self, dy):
        return dy


class AccumulatingDense(bn.Dense):
    """Adds to its gradients instead of writing them (state kept across calls)."""

    def param_backward(self, dy):
        self.grads["weight"] += dy.T @ self._x
        self.grads["bias"] += dy.sum(axis=0)


class CountingScale(bn.Layer):
    """Its output depends on how often forward ran before."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x, training=False):
        self.calls += 1
        return x * (1 + 0.01 * self.calls)

    def backward(self, dy):
        return dy * (1 + 0.01 * self.calls)


class Float64ReLU(bn.ReLU):
    """Returns float64 gradients for float32 inputs."""

    def backward(self, dy):
        return super().backward(dy).astype(np.float64)


def causes(report, severity=None):
    return report.causes(severity)


def test_a_wrong_weight_gradient_is_named_with_its_layer():
    model = mlp(AveragedTwiceDense(16, 16), bn.ReLU())
    model.layers.insert(1, bn.ReLU())
    x, y = blobs()
    report = bn.diagnose(model, x, y)
    assert report.first_bad_layer == "averagedtwicedense_1"
    assert ("gradient", "averagedtwicedense_1") in causes(report, "error")
    bad = next(row for row in report.layers if row.name == "averagedtwicedense_1")
    assert bad.grad_errors["weight"] > 0.1 and bad.grad_errors["input"] < 1e-6
    assert not report.gradient_ok and "averagedtwicedense_1" in str(report)


def test_a_missing_activation_mask_is_found_in_the_activation():
    x, y = blobs()
    report = mlp(MasklessReLU()).diagnose(x, y)
    assert report.first_bad_layer == "masklessrelu_1"
    assert [c for c in causes(report, "error")] == [("gradient", "masklessrelu_1")]
    finding = report.errors[0]
    assert "mask" in finding.fix


def test_gradients_replaced_instead_of_written_in_place():
    model = mlp(bn.ReLU())
    model.layers[0] = ReplacingDense(6, 16, rng=0)
    x, y = blobs()
    report = bn.diagnose(model, x, y)
    assert ("in_place", "replacingdense_1") in causes(report, "error")
    finding = next(f for f in report.errors if f.cause == "in_place")
    assert "self.grads['weight'][...] =" in finding.fix
    # Its gradient values are right: only the contract is broken.
    assert report.layers[0].grad_error < 1e-6


def test_fit_refuses_a_layer_that_does_not_write_its_gradients_in_place():
    model = mlp(bn.ReLU())
    model.layers[0] = ReplacingDense(6, 16, rng=0)
    before = model.get_weights()
    x, y = blobs()
    with pytest.raises(bn.TrainingError) as caught:
        model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("replacingdense_1 (ReplacingDense) replaced self.grads['weight']")
    assert "self.grads['weight'][...] = ..." in message
    np.testing.assert_array_equal(model.get_weights(), before)  # nothing was updated


def test_fit_still_trains_layers_that_write_in_place():
    x, y = blobs()
    model = mlp(bn.ReLU())
    history = model.fit(x, y, epochs=3, batch_size=32, verbose=0, seed=0)
    assert history["loss"][-1] < history["loss"][0]


def test_a_gradient_of_the_wrong_shape():
    model = bn.Sequential(
        [bn.Conv2D(1, 2, 3), bn.ReLU(), UnflatteningFlatten(), bn.Dense(2 * 4 * 4, 3)], seed=0
    )
    model.compile(loss="cross_entropy", optimizer="adam")
    x, y = blobs(shape=(1, 6, 6), classes=3)
    report = bn.diagnose(model, x, y)
    assert ("shape", "unflatteningflatten_1") in causes(report, "error")
    finding = next(f for f in report.errors if f.cause == "shape")
    assert "(256, 32)" in finding.message and "(256, 2, 4, 4)" in finding.message
    assert report.first_bad_layer == "unflatteningflatten_1"


def test_state_kept_across_calls_and_a_silent_dtype_change():
    x, y = blobs()
    model = mlp(bn.ReLU())
    model.layers[0] = AccumulatingDense(6, 16, rng=0)
    assert ("state", "accumulatingdense_1") in causes(bn.diagnose(model, x, y), "error")
    report = bn.diagnose(mlp(CountingScale(), bn.ReLU()), x, y)
    assert ("state", "countingscale_1") in causes(report, "error")
    report = bn.diagnose(mlp(Float64ReLU()), x, y)
    assert causes(report) == [("dtype", "float64relu_1")]


def positive_blobs():
    """Blobs scaled into [0, 1], like pixels."""
    x, y = blobs()
    return (x - x.min()) / (x.max() - x.min()), y


class Float32Tanh(bn.Tanh):
    """Computes in float32 whatever it is given: no float64 check is possible."""

    def forward(self, x, training=False):
        return super().forward(np.asarray(x, dtype=np.float32))


def test_a_layer_that_cannot_compute_in_float64_is_not_checked_rather_than_blamed():
    x, y = blobs()
    report = bn.diagnose(mlp(Float32Tanh()), x, y)
    assert causes(report) == [("not_checked", "float32tanh_1")]
    assert report.layers[1].note == "not checked" and report.gradient_ok


def test_a_network_killed_by_a_huge_learning_rate():
    x, y = positive_blobs()
    model = mlp(bn.ReLU(), optimizer=bn.Adam(1.0))
    model.fit(x, y, epochs=3, batch_size=32, verbose=0, seed=0)
    report = bn.diagnose(model, x, y)
    assert ("dead_relu", "relu_1") in causes(report, "error")
    assert report.layers[1].dead > 0.9
    assert report.gradient_ok  # the gradients themselves are right


def test_unscaled_inputs():
    x, y = blobs()
    report = bn.diagnose(mlp(bn.ReLU()), (x - x.min()) * 255, y)
    assert ("input_scale", None) in causes(report, "warning")
    assert report.gradient_ok


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_inputs_that_are_not_finite_are_an_error(dtype, bad):
    from barenet.doctor.data import check_inputs

    x = np.zeros((4, 3), dtype)
    x[2, 1] = bad
    [finding] = check_inputs(x)
    assert (finding.severity, finding.cause) == ("error", "input_scale")
    assert check_inputs(np.full((4, 3), 0.5, dtype)) == []


def test_negative_integer_inputs_count_by_their_size():
    from barenet.doctor.data import check_inputs

    [finding] = check_inputs(np.array([[-128, 3]], np.int8))  # np.abs(-128) is -128 in int8
    assert "up to 128" in finding.message


def test_shuffled_labels():
    x, y = blobs()
    model = mlp(bn.ReLU())
    assert bn.diagnose(model, x, y).ok
    shuffled = np.random.default_rng(1).permutation(y)
    assert causes(bn.diagnose(model, x, shuffled)) == [("labels_shuffled", None)]


def test_labels_out_of_range_one_class_and_lengths():
    x, y = blobs()
    model = mlp(bn.ReLU())
    report = bn.diagnose(model, x, y + 1)
    assert ("labels", None) in causes(report, "error")
    assert "[0, 4)" in report.errors[0].fix
    assert causes(bn.diagnose(model, x, np.full(len(x), 2))) == [("labels", None)]
    report = bn.diagnose(model, x, y[:-1])
    assert causes(report) == [("length", None)] and report.errors


def test_bad_arguments_raise_barenet_errors():
    x, y = blobs()
    with pytest.raises(bn.ArgumentError, match="Sequential"):
        bn.diagnose("model", x, y)
    with pytest.raises(bn.ArgumentError, match="x must be a non-empty batch"):
        bn.diagnose(mlp(bn.ReLU()), np.zeros(3), y)
    with pytest.raises(bn.ArgumentError, match="samples"):
        bn.diagnose(mlp(bn.ReLU()), x, y, samples=0)


# ---- healthy networks -----------------------------------------------------------------
@pytest.mark.parametrize("name", ["mnist-mlp", "fashion-mlp", "mnist-cnn", "fashion-cnn"])
def test_no_false_alarms_on_the_shipped_models(name, mnist, fashion):
    (x, y), _ = mnist if name.startswith("mnist") else fashion
    report = load_pretrained(name).diagnose(scale(x[:2000]), y[:2000])
    assert report.ok, str(report)
    assert 0 < report.grad_entries < 1000  # a sample, not every parameter


def random_network(seed):
    """A random healthy classifier of built-in layers, and blobs it can learn."""
    rng = np.random.default_rng(seed)
    classes = int(rng.integers(2, 6))
    act = [bn.ReLU, bn.LeakyReLU, bn.Sigmoid, bn.Tanh][seed % 4]
    init = "he" if act in (bn.ReLU, bn.LeakyReLU) else "glorot"
    layers: list[bn.Layer] = []
    if seed % 2:  # images
        c = int(rng.integers(2, 5))
        layers += [bn.Conv2D(2, c, 3, padding="same", init=init)]
        if rng.random() < 0.5:
            layers.append(bn.BatchNorm(c))
        layers += [act(), [bn.MaxPool2D, bn.AvgPool2D][int(rng.integers(2))](2)]
        if rng.random() < 0.5:
            layers += [bn.GlobalAvgPool2D()]
            width = c
        else:
            layers += [bn.Flatten()]
            width = c * 4 * 4
        shape: tuple[int, ...] = (2, 8, 8)
    else:
        width = int(rng.integers(3, 9))
        layers += [bn.Flatten()] if seed % 4 == 0 else []
        shape = (width,) if seed % 4 else (1, width)
    hidden = int(rng.integers(4, 17))
    layers += [bn.Dense(width, hidden, init=init)]
    if rng.random() < 0.5:
        layers.append(bn.BatchNorm(hidden))
    layers += [act(), bn.Dropout(float(rng.uniform(0, 0.5))), bn.Dense(hidden, classes)]
    if rng.random() < 0.5:
        layers.append(bn.Softmax())
    model = bn.Sequential(layers, seed=seed)
    optimizer = [bn.SGD(0.05, momentum=0.9), bn.Adam(1e-3), bn.RMSprop(1e-3)][seed % 3]
    model.compile(loss="cross_entropy", optimizer=optimizer)
    return model, blobs(128, classes, shape, seed=seed)


def test_no_false_alarms_on_random_healthy_networks_of_every_layer():
    kinds = set()
    for seed in range(20):
        model, (x, y) = random_network(seed)
        kinds |= {type(layer).__name__ for layer in model.layers}
        report = model.diagnose(x, y, batch_size=128)
        assert report.ok, f"seed {seed}: {model}\n{report}"
    built_in = {
        "Dense", "Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "BatchNorm",
        "Dropout", "Flatten", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax",
    }  # fmt: skip
    assert built_in <= kinds, built_in - kinds


def test_the_model_and_its_optimizer_are_left_unchanged():
    x, y = blobs()
    model = bn.Sequential(
        [bn.Dense(6, 16), bn.BatchNorm(16), bn.ReLU(), bn.Dropout(0.3, rng=1), bn.Dense(16, 4)],
        seed=0,
    )
    model.compile(loss="cross_entropy", optimizer=bn.Adam(1e-2))
    model.fit(x, y, epochs=1, batch_size=64, verbose=0, seed=0)
    weights, norm = model.get_weights(), model.layers[1]
    running = norm.running_mean.copy(), norm.running_var.copy()
    state = {k: v.copy() for k, v in model.optimizer.state_dict().items()}
    draw = np.random.default_rng(1).bit_generator.state
    model.layers[3].reseed(np.random.default_rng(1))
    report = model.diagnose(x, y)
    assert report.ok, str(report)
    np.testing.assert_array_equal(model.get_weights(), weights)
    np.testing.assert_array_equal(norm.running_mean, running[0])
    np.testing.assert_array_equal(norm.running_var, running[1])
    after = model.optimizer.state_dict()
    assert after.keys() == state.keys()
    for k, v in state.items():
        np.testing.assert_array_equal(after[k], v)
    assert model.layers[3].rng.bit_generator.state == draw
    assert all(row.update_ratio is not None for row in report.layers if row.kind == "Dense")


def test_the_report_prints_a_table_and_converts_to_json():
    x, y = blobs()
    report = bn.diagnose(mlp(MasklessReLU()), x, y, samples=5)
    text = str(report)
    assert "masklessrelu_1" in text and "try:" in text and "entries" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["first_bad_layer"] == "masklessrelu_1" and not data["ok"]
    assert data["grad_entries"] == report.grad_entries
    assert [f["cause"] for f in data["findings"]] == ["gradient"]


# ---- the Monitor callback -------------------------------------------------------------
def test_monitor_records_per_epoch_figures_in_the_history():
    x, y = blobs()
    model = mlp(bn.Tanh(), bn.Dense(16, 16), bn.ReLU())
    monitor = bn.Monitor()
    history = model.fit(x, y, epochs=3, batch_size=32, verbose=0, seed=0, callbacks=[monitor])
    for key in (
        "monitor/dense_1/grad_norm",
        "monitor/dense_1/weight_change",
        "monitor/relu_1/dead",
        "monitor/tanh_1/saturated",
    ):
        assert len(history[key]) == 3 and all(np.isfinite(history[key])), key
    assert history["monitor/dense_1/weight_change"][0] > 0
    assert monitor.history["monitor/relu_1/dead"] == history["monitor/relu_1/dead"]


def test_monitor_warns_once_when_a_layer_dies():
    x, y = positive_blobs()
    model = mlp(bn.ReLU(), optimizer=bn.Adam(1.0))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        model.fit(x, y, epochs=4, batch_size=32, verbose=0, seed=0, callbacks=[bn.Monitor()])
    dead = [w for w in seen if "relu_1" in str(w.message) and "never fired" in str(w.message)]
    assert len(dead) == 1
    assert model.history is not None and model.history["monitor/relu_1/dead"][-1] > 0.9


# ---- the command line -----------------------------------------------------------------
SCRIPT = """
import numpy as np
import barenet as bn

class MasklessReLU(bn.ReLU):
    def backward(self, dy):
        return dy

rng = np.random.default_rng(0)
centres = rng.standard_normal((3, 4))
y = rng.integers(0, 3, 200)
x = (centres[y] + 0.5 * rng.standard_normal((200, 4))).astype(np.float32)
model = bn.Sequential([bn.Dense(4, 8), {act}, bn.Dense(8, 3)], seed=0)
model.compile(loss="cross_entropy", optimizer="adam")
"""


def test_cli_doctor_exit_status_follows_the_report(tmp_path, capsys):
    bad, good = tmp_path / "bad.py", tmp_path / "good.py"
    bad.write_text(SCRIPT.format(act="MasklessReLU()"))
    good.write_text(SCRIPT.format(act="bn.ReLU()"))
    assert main(["doctor", "--script", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "masklessrelu_1" in out and "error" in out
    assert main(["doctor", "--script", str(good)]) == 0
    assert "healthy: no findings" in capsys.readouterr().out
    assert main(["doctor", "--script", str(good), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_cli_doctor_on_a_model_file_and_a_shipped_model(tmp_path, capsys):
    assert main(["doctor", "--pretrained", "mnist-mlp", "--batch-size", "64"]) == 0
    assert "dense_1" in capsys.readouterr().out
    model = mlp(bn.ReLU())
    path = model.save(tmp_path / "m.npz")
    assert main(["doctor", str(path)]) == 2  # which data? one line, no traceback
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("raise ValueError('no data here')", "raised ValueError: no data here"),
        ("model = 1", "missing x, y"),
        ("import barenet as bn\nmodel, x, y = 1, [[0.0]], [0]", "Sequential"),
        ("import sys\nsys.exit(3)", "raised SystemExit"),
    ],
)
def test_cli_doctor_bad_scripts_get_one_line_and_status_2(tmp_path, capsys, text, message):
    script = tmp_path / "s.py"
    script.write_text(text)
    assert main(["doctor", "--script", str(script)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_cli_doctor_missing_script_and_two_sources(tmp_path, capsys):
    assert main(["doctor", "--script", str(tmp_path / "none.py")]) == 2
    assert "no such file" in capsys.readouterr().err
    script = tmp_path / "s.py"
    script.write_text("")
    assert main(["doctor", "--script", str(script), "--pretrained", "mnist-mlp"]) == 2
    assert "not two" in capsys.readouterr().err
