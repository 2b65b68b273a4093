"""ONNX export and import: the shipped networks and random ones run the same in ONNX
Runtime, files round-trip bit for bit, PyTorch's exports read back, bad files are refused."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import barenet as bn
from barenet.cli import main
from barenet.datasets import scale
from barenet.errors import ArgumentError, BarenetError, ModelFileError
from barenet.export import DEFAULT_OPSET, MIN_OPSET, from_onnx, to_onnx
from barenet.metrics import accuracy
from barenet.pretrained import PRETRAINED, load_pretrained


def run_onnx(path, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """ONNX Runtime's outputs for ``x``, a batch of ``batch_size`` at a time."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    parts = [x[i : i + batch_size] for i in range(0, len(x), batch_size)]
    return np.concatenate([session.run(None, {name: part})[0] for part in parts])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_shipped_networks_match_onnx_runtime_on_the_whole_test_set(name, request, tmp_path):
    entry = PRETRAINED[name]
    (_, _), (x_test, y_test) = request.getfixturevalue(entry.dataset)
    model = load_pretrained(name)
    x = scale(x_test)  # pixels / 255, as the metadata says
    assert model.metadata["preprocess"]["scale"] == "pixels / 255"
    path = to_onnx(model, tmp_path / f"{name}.onnx")
    ours = model.predict_proba(x, batch_size=500)
    theirs = run_onnx(path, x[:, None])  # NCHW
    assert len(x) == 10_000 and theirs.shape == ours.shape == (10_000, 10)
    assert np.abs(ours - theirs).max() <= 1e-5
    assert accuracy(y_test, theirs.argmax(1)) == accuracy(y_test, ours.argmax(1))
    assert accuracy(y_test, theirs.argmax(1)) == pytest.approx(entry.test_accuracy, abs=5e-5)


def test_graph_describes_itself(tmp_path):
    model = load_pretrained("fashion-cnn")
    proto = onnx.load(str(to_onnx(model, tmp_path / "m.onnx")))
    onnx.checker.check_model(proto, full_check=True)
    (graph_input,) = proto.graph.input
    dims = graph_input.type.tensor_type.shape.dim
    assert graph_input.name == "input" and dims[0].dim_param == "N"
    assert [d.dim_value for d in dims[1:]] == [1, 28, 28]
    assert graph_input.type.tensor_type.elem_type == TensorProto.FLOAT
    assert proto.graph.output[0].name == "output"
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["dataset"] == "fashion"
    assert json_list(props["classes"])[-1] == "Ankle boot"
    assert "pixels / 255" in props["preprocess"]
    assert proto.producer_name == "barenet" and "Conv2D" in proto.doc_string
    ops = [n.op_type for n in proto.graph.node]
    assert "Dropout" not in ops and ops[-1] == "Softmax"  # predict_proba's softmax
    assert proto.opset_import[0].version == DEFAULT_OPSET


def json_list(text: str) -> list:
    import json

    return json.loads(text)


# ---- random networks of every layer type ------------------------------------------------
def _image_layer(draw, channels: int, h: int, w: int) -> tuple[bn.Layer, tuple[int, int, int]]:
    """One image layer that fits (channels, h, w) images, and its output's shape."""
    kind = draw(st.sampled_from(["conv", "conv", "max", "avg", "bn", "act"]))
    if kind == "conv":
        kernel = draw(st.sampled_from([1, 2, 3, (2, 3), 4]))
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        if kh > h or kw > w:
            kernel, kh, kw = 1, 1, 1
        stride = draw(st.sampled_from([1, 2]))
        pads = [p for p in (0, 1) if p < min(kh, kw)]  # barenet pads less than the kernel
        padding = draw(st.sampled_from(["same", *pads] if stride == 1 else pads))
        layer: bn.Layer = bn.Conv2D(channels, draw(st.integers(1, 4)), kernel, stride, padding)
    elif kind in ("max", "avg") and min(h, w) >= 3:
        kernel = draw(st.sampled_from([2, 3, (2, 3)]))
        stride = draw(st.sampled_from([None, 1, 2]))
        layer = (bn.MaxPool2D if kind == "max" else bn.AvgPool2D)(kernel, stride)
    elif kind == "bn":
        momentum, eps = draw(st.sampled_from([0.1, 0.01, 0.3])), draw(st.sampled_from([1e-5, 1e-3]))
        layer = bn.BatchNorm(channels, momentum=momentum, eps=eps)
    else:
        layer = _activation(draw)
    return layer, layer.output_shape((channels, h, w))


def _activation(draw) -> bn.Layer:
    slope = draw(st.sampled_from([0.01, 0.2]))
    return draw(
        st.sampled_from([bn.ReLU(), bn.LeakyReLU(slope), bn.Sigmoid(), bn.Tanh(), bn.Dropout(0.3)])
    )


SIZES = [(4, 4), (5, 7), (9, 6), (8, 8)]


@st.composite
def networks(draw):
    """A model, seeded, with random BatchNorm statistics, and an input batch for it."""
    layers: list[bn.Layer] = []
    images = draw(st.booleans())
    if images:
        shape: tuple[int, ...] = (draw(st.integers(1, 3)), *draw(st.sampled_from(SIZES)))
        out = shape
        for _ in range(draw(st.integers(1, 4))):
            layer, out = _image_layer(draw, *out)
            layers.append(layer)
        layers.append(draw(st.sampled_from([bn.GlobalAvgPool2D(), bn.Flatten()])))
        width = out[0] if isinstance(layers[-1], bn.GlobalAvgPool2D) else int(np.prod(out))
    else:
        width = draw(st.integers(1, 12))
        shape = (width,)
    for _ in range(draw(st.integers(1, 3))):
        out = draw(st.integers(1, 8))
        layers.append(bn.Dense(width, out))
        width = out
        layers += draw(st.sampled_from([[], [bn.BatchNorm(width)], [_activation(draw)]]))
    ending = draw(st.sampled_from(["logits", "softmax", "compiled", "sigmoid"]))
    if ending == "softmax":
        layers.append(bn.Softmax())
    seed = draw(st.integers(0, 2**16))
    model = bn.Sequential(layers, seed=seed)
    model.input_shape = shape
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, bn.BatchNorm):
            layer.running_mean[...] = rng.normal(size=layer.num_features)
            layer.running_var[...] = rng.uniform(0.5, 2, size=layer.num_features)
            layer.params["weight"][...] = rng.normal(size=layer.num_features)
            layer.params["bias"][...] = rng.normal(size=layer.num_features)
    if ending == "compiled":
        model.compile(loss="cross_entropy", optimizer="adam")
    elif ending == "sigmoid":
        model.compile(loss="binary_cross_entropy", optimizer="adam", metrics=[])
    batch = draw(st.sampled_from([1, 3]))
    x = rng.normal(size=(batch, *shape)).astype(np.float32)
    return model, x


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks())
def test_random_networks_match_onnx_runtime_and_read_back_exactly(tmp_path_factory, case):
    model, x = case
    path = to_onnx(model, tmp_path_factory.mktemp("onnx") / "m.onnx")
    ours = model.predict_proba(x)
    np.testing.assert_allclose(run_onnx(path, x), ours, rtol=1e-5, atol=1e-5)
    back = from_onnx(path)
    kept = [layer for layer in model.layers if not isinstance(layer, bn.Dropout)]
    assert [repr(layer) for layer in back.layers] == [repr(layer) for layer in kept]
    assert np.array_equal(back.get_weights(), model.get_weights())
    assert np.array_equal(back.predict_proba(x), ours)


def test_conv_same_with_an_even_kernel_pads_bottom_and_right(tmp_path):
    model = bn.Sequential([bn.Conv2D(1, 1, 2, padding="same")], seed=0)
    proto = onnx.load(str(to_onnx(model, tmp_path / "m.onnx")))
    (conv,) = proto.graph.node
    pads = next(a for a in conv.attribute if a.name == "pads").ints
    assert list(pads) == [0, 0, 1, 1]  # top, left, bottom, right
    x = np.random.default_rng(0).normal(size=(2, 1, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", x), model.forward(x), atol=1e-6)


@pytest.mark.parametrize("opset", [MIN_OPSET, DEFAULT_OPSET, 20])
def test_opsets_and_fixed_batch(tmp_path, opset):
    model = load_pretrained("mnist-cnn")
    x = np.random.default_rng(1).random((1, 1, 28, 28), dtype=np.float32)
    path = to_onnx(model, tmp_path / "m.onnx", opset=opset, batch=1)
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_value == 1
    assert np.abs(run_onnx(path, x) - model.predict_proba(x[:, 0])).max() <= 1e-5


def test_float64_models_export_as_double(tmp_path):
    model = bn.Sequential([bn.Dense(3, 4, dtype=np.float64), bn.Tanh()], seed=0)
    x = np.random.default_rng(0).normal(size=(5, 3))
    path = to_onnx(model, tmp_path / "m.onnx")
    assert np.abs(run_onnx(path, x) - model.forward(x)).max() < 1e-12
    back = bn.load_model(path)
    assert back.dtype == np.float64 and np.array_equal(back.forward(x), model.forward(x))


def test_round_trip_keeps_config_metadata_and_weights(tmp_path):
    model = load_pretrained("mnist-cnn")
    back = bn.load_model(to_onnx(model, tmp_path / "m.onnx"))
    assert back.metadata == model.metadata
    assert back.input_shape == model.input_shape == (28, 28)
    assert back.get_config()["loss"] == model.get_config()["loss"]
    assert back.get_config()["optimizer"] == model.get_config()["optimizer"]
    assert np.array_equal(back.get_weights(), model.get_weights())
    for ours, theirs in zip(
        [l for l in model.layers if not isinstance(l, bn.Dropout)], back.layers, strict=True
    ):
        for a, b in zip(ours.state().values(), theirs.state().values(), strict=True):
            assert np.array_equal(a, b)
    x = np.random.default_rng(0).random((64, 28, 28), dtype=np.float32)
    assert np.array_equal(back.predict_proba(x), model.predict_proba(x))


def test_bad_export_arguments(tmp_path):
    model = load_pretrained("mnist-mlp")
    with pytest.raises(ArgumentError, match="opset must be"):
        to_onnx(model, tmp_path / "m.onnx", opset=9)
    with pytest.raises(ArgumentError, match="batch must be"):
        to_onnx(model, tmp_path / "m.onnx", batch=0)
    with pytest.raises(ArgumentError, match="input_shape"):
        to_onnx(bn.Sequential([bn.Flatten(), bn.Dense(4, 2)]), tmp_path / "m.onnx")

    class Doubler(bn.Layer):
        def forward(self, x, training=False):
            return 2 * x

    with pytest.raises(ArgumentError, match=r"layer 1 \(Doubler\) has no ONNX counterpart"):
        to_onnx(bn.Sequential([bn.Dense(2, 2), Doubler()]), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


# ---- graphs from PyTorch and by hand ------------------------------------------------------
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_reads_what_torch_onnx_export_writes(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding="same"),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 6, 2, stride=2, padding=1),
        torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(6, 5, 2, padding="same"),
        torch.nn.Tanh(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(5, 7),
        torch.nn.BatchNorm1d(7),
        torch.nn.LeakyReLU(0.1),
        torch.nn.Dropout(0.2),
        torch.nn.Sigmoid(),
        torch.nn.Linear(7, 3),
        torch.nn.Softmax(dim=1),
    )
    with torch.no_grad():  # statistics that are not the defaults
        for m in net:
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    net.eval()
    x = torch.randn(6, 1, 12, 12)
    path = tmp_path / "torch.onnx"
    torch.onnx.export(
        net,
        (x,),
        str(path),
        dynamo=False,  # the dynamo exporter needs onnxscript
        input_names=["pixels"],
        dynamic_axes={"pixels": {0: "batch"}},
    )
    model = bn.load_model(path)
    assert model.input_shape == (1, 12, 12)
    with torch.no_grad():
        expected = net(x).numpy()
    assert np.abs(model.predict_proba(x.numpy()) - expected).max() <= 1e-5
    assert isinstance(model.layers[-1], bn.Softmax)


def _graph_file(tmp_path, nodes, initializers, *, shape=(None, 4), name="g.onnx"):
    graph = helper.make_graph(
        nodes,
        "hand",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, None])],
        [numpy_helper.from_array(v, k) for k, v in initializers.items()],
    )
    proto = helper.make_model_gen_version(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / name
    onnx.save(proto, str(path))
    return path


def test_matmul_add_reshape_identity_and_constants_read_as_layers(tmp_path):
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(12, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    nodes = [
        helper.make_node("Identity", ["x"], ["x1"]),
        helper.make_node(
            "Constant",
            [],
            ["shape"],
            value=numpy_helper.from_array(np.array([0, -1], dtype=np.int64)),
        ),
        helper.make_node("Reshape", ["x1", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["z"]),
        helper.make_node("Add", ["z", "b"], ["y"]),
    ]
    path = _graph_file(tmp_path, nodes, {"w": w, "b": b}, shape=(None, 3, 4))
    model = from_onnx(path)
    assert [type(l).__name__ for l in model.layers] == ["Flatten", "Dense"]
    x = rng.normal(size=(5, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(model.predict_proba(x), run_onnx(path, x), atol=1e-5)


# ---- bad files -------------------------------------------------------------------------
def test_unsupported_operator_is_named(tmp_path, capsys):
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="first"),
        helper.make_node("Erf", ["r"], ["e"], name="the_erf"),
        helper.make_node("Exp", ["e"], ["y"], name="later"),
    ]
    path = _graph_file(tmp_path, nodes, {})
    with pytest.raises(ModelFileError, match=r"node 'the_erf' \(Erf\) has no barenet counterpart"):
        bn.load_model(path)
    assert main(["evaluate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Erf" in err and "Traceback" not in err


def test_graph_that_is_not_a_chain_is_refused(tmp_path):
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Tanh", ["x"], ["b"]),
        helper.make_node("Add", ["a", "b"], ["y"]),
    ]
    with pytest.raises(ModelFileError, match="plain chain"):
        from_onnx(_graph_file(tmp_path, nodes, {}))


def test_asymmetric_pads_barenet_cannot_hold_are_refused(tmp_path):
    w = np.ones((1, 1, 3, 3), np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], pads=[0, 1, 1, 0])]
    path = _graph_file(tmp_path, nodes, {"w": w}, shape=(None, 1, 5, 5))
    with pytest.raises(ModelFileError, match=r"pads \[0, 1, 1, 0\]"):
        from_onnx(path)


def test_weights_that_do_not_fit_the_input_are_refused(tmp_path):
    w = np.zeros((3, 5), np.float32)  # reads 5 features; the input has 4
    path = _graph_file(tmp_path, [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)], {"w": w})
    with pytest.raises(ModelFileError, match="shapes do not fit"):
        from_onnx(path)


def test_nan_weights_in_an_onnx_file_are_refused(tmp_path):
    w = np.full((4, 2), np.nan, np.float32)
    path = _graph_file(tmp_path, [helper.make_node("MatMul", ["x", "w"], ["y"])], {"w": w})
    with pytest.raises(ModelFileError, match="NaN"):
        from_onnx(path)


@pytest.mark.parametrize("cut", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_onnx_is_one_clear_error(tmp_path, capsys, cut):
    data = to_onnx(load_pretrained("mnist-cnn"), tmp_path / "m.onnx").read_bytes()
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(ModelFileError, match=r"cut\.onnx"):
        bn.load_model(bad)
    assert main(["evaluate", str(bad)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_garbage_and_missing_onnx_files(tmp_path):
    bad = tmp_path / "noise.onnx"
    bad.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(ModelFileError, match=r"noise\.onnx"):
        bn.load_model(bad)
    with pytest.raises(ModelFileError, match="no such model file"):
        from_onnx(tmp_path / "absent.onnx")


# ---- command line, optional dependency, import cost ------------------------------------
def test_cli_exports_models_and_pretrained(tmp_path, capsys):
    assert main(["export", "--pretrained", "mnist-mlp", str(tmp_path / "a.onnx")]) == 0
    assert "a.onnx" in capsys.readouterr().out
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    expected = load_pretrained("mnist-mlp").predict_proba(x[:, 0])
    assert np.abs(run_onnx(tmp_path / "a.onnx", x) - expected).max() <= 1e-5
    load_pretrained("mnist-mlp").save(tmp_path / "m.npz")
    argv = ["export", str(tmp_path / "m.npz"), str(tmp_path / "b.onnx"), "--opset", "13"]
    assert main(argv) == 0
    assert onnx.load(str(tmp_path / "b.onnx")).opset_import[0].version == 13
    assert main(["export", str(tmp_path / "b.onnx"), str(tmp_path / "c.safetensors")]) == 0
    assert np.array_equal(
        bn.load_model(tmp_path / "c.safetensors").predict_proba(x[:, 0]), expected
    )


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["export", "missing.npz", "out.onnx"], "missing.npz"),
        (["export", "--pretrained", "mnist-mlp", "out.txt"], "must end in .onnx"),
        (["export", "--pretrained", "mnist-mlp", "out.onnx", "--opset", "3"], "opset must be"),
        (["export", "--pretrained", "mnist-mlp", "out.onnx", "--batch", "x"], "batch must be"),
        (["export", "only-one.npz"], "give MODEL OUT"),
    ],
)
def test_cli_export_errors_are_one_line(tmp_path, monkeypatch, capsys, argv, needle):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err
    assert not (tmp_path / "out.onnx").exists()


def test_missing_onnx_package_names_the_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now fails
    with pytest.raises(BarenetError, match=r"pip install 'barenet\[onnx\]'"):
        to_onnx(load_pretrained("mnist-mlp"), tmp_path / "m.onnx")
    assert main(["export", "--pretrained", "mnist-mlp", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'barenet[onnx]'" in err


def test_importing_barenet_loads_neither_torch_nor_onnx():
    code = (
        "import barenet, sys; "
        "assert 'torch' not in sys.modules and 'onnx' not in sys.modules "
        "and 'safetensors' not in sys.modules and 'onnxruntime' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
