""".safetensors model files: the extension picks the format, the config rides in the
metadata, the arrays round-trip bit for bit, and a damaged or lying file is refused."""

from __future__ import annotations

import json
import struct
import sys

import numpy as np
import pytest
import safetensors.numpy

import barenet as bn
from barenet.cli import main
from barenet.errors import BarenetError, ModelFileError
from barenet.pretrained import load_pretrained


@pytest.fixture
def x():
    return np.random.default_rng(0).random((200, 28, 28), dtype=np.float32)


@pytest.mark.parametrize("name", ["mnist-mlp", "fashion-cnn"])
def test_shipped_networks_round_trip_bit_for_bit(tmp_path, x, name):
    model = load_pretrained(name)
    path = model.save(tmp_path / "m.safetensors")
    assert path == tmp_path / "m.safetensors"  # no .npz appended
    back = bn.load_model(path)
    assert np.array_equal(back.get_weights(), model.get_weights())
    for ours, theirs in zip(model.layers, back.layers, strict=True):
        assert repr(ours) == repr(theirs)
        for a, b in zip(ours.state().values(), theirs.state().values(), strict=True):
            assert np.array_equal(a, b)
    assert np.array_equal(back.predict_proba(x), model.predict_proba(x))
    assert back.metadata == model.metadata and back.input_shape == model.input_shape


def test_file_is_plain_safetensors_with_the_config_in_its_metadata(tmp_path):
    model = load_pretrained("mnist-cnn")
    path = model.save(tmp_path / "m.safetensors")
    tensors = safetensors.numpy.load_file(str(path))
    assert np.array_equal(tensors["param/0/weight"], model.layers[0].params["weight"])
    assert np.array_equal(tensors["state/1/running_var"], model.layers[1].running_var)
    with safetensors.safe_open(str(path), framework="numpy") as f:
        config = json.loads(f.metadata()["config"])
    assert config["format"] == "barenet-model" and config["layers"][0]["class"] == "Conv2D"
    assert config["metadata"]["dataset"] == "mnist"


def test_checkpoint_with_optimizer_state_resumes_exactly(tmp_path):
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=(64, 5)).astype(np.float32), rng.integers(0, 3, 64)

    def fresh():
        model = bn.Sequential([bn.Dense(5, 8), bn.BatchNorm(8), bn.ReLU(), bn.Dense(8, 3)], seed=0)
        model.compile(loss="cross_entropy", optimizer=bn.Adam(lr=0.01))
        return model

    straight = fresh()
    straight.fit(xs, ys, epochs=2, batch_size=16, seed=1, verbose=0)
    first = fresh()
    first.fit(xs, ys, epochs=1, batch_size=16, seed=1, verbose=0)
    path = first.save(tmp_path / "ckpt.safetensors", include_optimizer=True, epoch=1)
    resumed = bn.load_model(path)
    resumed.fit(xs, ys, epochs=1, batch_size=16, seed=1, verbose=0, initial_epoch=1)
    assert np.array_equal(resumed.get_weights(), straight.get_weights())


def _rewrite(path, drop=None, change=None, config=None):
    """Write the file again with a tensor dropped or replaced, or another config."""
    with safetensors.safe_open(str(path), framework="numpy") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys() if k != drop}
    tensors.update(change or {})
    if config is not None:
        metadata = {"config": config}
    path.write_bytes(safetensors.numpy.save(tensors, metadata=metadata))


@pytest.fixture
def saved(tmp_path):
    model = bn.Sequential([bn.Dense(4, 6), bn.BatchNorm(6), bn.ReLU(), bn.Dense(6, 2)], seed=0)
    model.compile(loss="cross_entropy", optimizer="adam")
    return model.save(tmp_path / "m.safetensors")


def test_missing_tensor(saved):
    _rewrite(saved, drop="state/1/running_mean")
    with pytest.raises(ModelFileError, match=r"missing array 'state/1/running_mean'"):
        bn.load_model(saved)


def test_tensor_of_the_wrong_shape(saved):
    _rewrite(saved, change={"param/3/weight": np.zeros((2, 5), np.float32)})
    with pytest.raises(ModelFileError, match=r"param/3/weight"):
        bn.load_model(saved)


def test_config_that_lies_about_the_layers(saved):
    with safetensors.safe_open(str(saved), framework="numpy") as f:
        config = json.loads(f.metadata()["config"])
    config["layers"][0]["config"]["out_features"] = 100_000  # the tensors say 6
    _rewrite(saved, config=json.dumps(config))
    with pytest.raises(ModelFileError, match=r"param/0/weight"):
        bn.load_model(saved)


def test_nan_weights(saved):
    _rewrite(saved, change={"param/0/bias": np.array([0, 0, np.nan, 0, 0, 0], np.float32)})
    with pytest.raises(ModelFileError, match="NaN"):
        bn.load_model(saved)


def test_header_that_lies_about_a_shape(saved):
    data = bytearray(saved.read_bytes())
    (length,) = struct.unpack("<Q", data[:8])
    header = data[8 : 8 + length].decode()
    assert '"shape":[6,4]' in header
    data[8 : 8 + length] = header.replace('"shape":[6,4]', '"shape":[9,4]').encode()
    saved.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="not a readable safetensors file"):
        bn.load_model(saved)


def test_header_that_claims_more_bytes_than_the_file(saved):
    data = bytearray(saved.read_bytes())
    data[:8] = struct.pack("<Q", 10**9)
    saved.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="not a readable safetensors file"):
        bn.load_model(saved)


def test_foreign_safetensors_without_a_config(tmp_path):
    path = tmp_path / "foreign.safetensors"
    path.write_bytes(safetensors.numpy.save({"w": np.ones(3, np.float32)}))
    with pytest.raises(ModelFileError, match="no config"):
        bn.load_model(path)


def test_foreign_dtype(saved):
    _rewrite(saved, change={"param/0/bias": np.zeros(6, np.float16)})
    with pytest.raises(ModelFileError, match="F16"):
        bn.load_model(saved)


@pytest.mark.parametrize("cut", [0.0, 0.01, 0.5, 0.99])
def test_truncated_file_is_one_line_and_exit_2(saved, capsys, cut):
    data = saved.read_bytes()
    saved.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(ModelFileError, match=r"m\.safetensors"):
        bn.load_model(saved)
    assert main(["evaluate", str(saved), "--dataset", "mnist"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "m.safetensors" in err and "Traceback" not in err


def test_missing_package_names_the_install(tmp_path, monkeypatch):
    model = bn.Sequential([bn.Dense(2, 2)], seed=0)
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(BarenetError, match=r"pip install 'barenet\[safetensors\]'"):
        model.save(tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()
