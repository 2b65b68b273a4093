"""Hostile model files: every one is a ModelFileError naming the file, at bounded cost.

The files are made by hand, member by member (``.npy`` headers included), so they can
say anything: a small file describing a huge network, a member whose header declares
more data than it holds, configs of the wrong types, NaN weights. Memory is measured
with tracemalloc, which sees NumPy's allocations.
"""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import barenet as bn
from barenet import io as model_io
from barenet.cli import main
from barenet.errors import BarenetError, ModelFileError

MB = 1 << 20
FAST = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def npy(a: np.ndarray | None = None, *, header: dict[str, Any] | None = None, data=b"") -> bytes:
    """The bytes of a ``.npy`` member: ``a`` as NumPy writes it, or any header and data."""
    buf = io.BytesIO()
    if header is None:
        assert a is not None
        np.lib.format.write_array(buf, a, allow_pickle=False)
        return buf.getvalue()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + data


def config_bytes(config: Any) -> bytes:
    return npy(np.frombuffer(json.dumps(config).encode(), np.uint8))


def write(path: Path, members: dict[str, bytes], deflate: bool = False) -> Path:
    """A zip of ``name.npy`` members, as ``np.savez`` (or ``savez_compressed``) makes."""
    mode = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", mode) as z:
        for name, data in members.items():
            z.writestr(name + ".npy", data)
    return path


def model_file(path: Path, config: Any, arrays: dict[str, np.ndarray] | None = None) -> Path:
    members = {"config": config_bytes(config)}
    members.update({k: npy(a) for k, a in (arrays or {}).items()})
    return write(path, members)


def dense_config(i: int, o: int, **extra: Any) -> dict[str, Any]:
    layer = {"class": "Dense", "config": {"in_features": i, "out_features": o}}
    return {"format": "barenet-model", "version": 1, "layers": [layer], **extra}


def small_arrays() -> dict[str, np.ndarray]:
    return {"param/0/weight": np.ones((3, 2), np.float32), "param/0/bias": np.zeros(3, np.float32)}


def load_measured(path: Path) -> tuple[BaseException | None, int]:
    """Load ``path``; the exception raised (None if it loaded) and the peak bytes used."""
    tracemalloc.start()
    try:
        bn.load_model(path)
        error = None
    except Exception as e:  # anything but ModelFileError fails the calling test
        error = e
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return error, peak


def refused(path: Path, match: str, peak_limit: int = 50 * MB) -> str:
    error, peak = load_measured(path)
    assert isinstance(error, ModelFileError), repr(error)
    message = str(error)
    assert str(path) in message and "\n" not in message
    assert match in message, message
    assert peak < peak_limit, f"{peak / MB:.0f} MB used to refuse {path.name}"
    return message


@pytest.fixture
def saved(tmp_path) -> Path:
    model = bn.Sequential([bn.Dense(2, 3), bn.BatchNorm(3), bn.ReLU(), bn.Dense(3, 2)], seed=0)
    model.compile(loss="cross_entropy", optimizer="adam")
    model.fit(np.ones((4, 2), np.float32), np.array([0, 1, 0, 1]), epochs=1, verbose=0)
    model.metadata = {"dataset": "mnist", "classes": ["a", "b"]}
    return model.save(tmp_path / "good.npz", include_optimizer=True)


def members_of(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n.removesuffix(".npy"): z.read(n) for n in z.namelist()}


def config_of(path: Path) -> dict[str, Any]:
    with np.load(path) as npz:
        return json.loads(npz["config"].tobytes())


# -- sizes: checked from headers and the config, before anything is built or read --------


def test_config_shapes_are_checked_before_any_layer_is_built(tmp_path):
    path = model_file(tmp_path / "big.npz", dense_config(5000, 5000), small_arrays())
    refused(
        path, "'param/0/weight' is float32[3, 2], layer 0 (Dense) of the config holds [5000, 5000]"
    )


def test_a_small_file_describing_a_huge_network(tmp_path):
    filler = np.random.default_rng(0).random(32_000, dtype=np.float32)  # 130 KB
    path = model_file(tmp_path / "huge.npz", dense_config(20000, 20000), {"param/0/weight": filler})
    assert 120_000 < path.stat().st_size < 140_000
    refused(path, f"over {model_io.MAX_PARAMS:,} values")


def conv_file(path: Path, padding: Any, input_shape: list[int] | None) -> Path:
    layer = {
        "class": "Conv2D",
        "config": {"in_channels": 1, "out_channels": 2, "kernel_size": [3, 3], "padding": padding},
    }
    config = {"format": "barenet-model", "version": 1, "layers": [layer]}
    config["input_shape"] = input_shape
    arrays = {"param/0/weight": np.ones((2, 1, 3, 3), np.float32)}
    arrays["param/0/bias"] = np.zeros(2, np.float32)
    return model_file(path, config, arrays)


def test_a_padding_that_would_make_every_prediction_huge(tmp_path):
    """Padding 10**9 loaded fine and made predict allocate without bound."""
    refused(conv_file(tmp_path / "pad.npz", 10**9, None), "pads 1000000000 pixels")
    refused(conv_file(tmp_path / "pad3.npz", 3, [1, 28, 28]), "not less than its kernel")


def test_samples_that_grow_past_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(model_io, "MAX_SAMPLE_VALUES", 1000)
    refused(conv_file(tmp_path / "a.npz", 1, [1, 28, 28]), "after layer 0")
    refused(conv_file(tmp_path / "b.npz", 0, [1, 2000, 1]), "at the input")
    refused(conv_file(tmp_path / "c.npz", 0, [1, 2, 2]), "cannot take samples")
    monkeypatch.undo()
    model = bn.load_model(conv_file(tmp_path / "ok.npz", "same", [1, 28, 28]))
    assert model.predict_proba(np.zeros((1, 1, 28, 28), np.float32)).shape == (1, 2, 28, 28)


def test_total_values_are_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(model_io, "MAX_PARAMS", 5)
    refused(model_file(tmp_path / "m.npz", dense_config(2, 3), small_arrays()), "more than 5")


@pytest.mark.parametrize("shape", [(50_000_000,), (2**40,), (2**31, 2**31, 2**31)])
def test_a_member_declaring_a_huge_shape(tmp_path, shape):
    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
    members = {
        "config": config_bytes(dense_config(2, 3)),
        "param/0/weight": npy(header=header, data=bytes(24)),
        "param/0/bias": npy(np.zeros(3, np.float32)),
    }
    refused(write(tmp_path / "m.npz", members), "is declared float32")


def test_a_member_holding_more_than_its_header_says(tmp_path):
    """A deflated member whose header says 6 values but which inflates to 10 MB: refused
    from the zip directory, before inflating (it used to load, the rest ignored)."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (3, 2)}
    members = {
        "config": config_bytes(dense_config(2, 3)),
        "param/0/weight": npy(header=header, data=bytes(10 * MB)),
        "param/0/bias": npy(np.zeros(3, np.float32)),
    }
    path = write(tmp_path / "bomb.npz", members, deflate=True)
    assert path.stat().st_size < 100_000
    refused(path, "its member holds 10485888 bytes", peak_limit=2 * MB)


def test_the_config_member_is_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(model_io, "MAX_CONFIG_BYTES", 100)
    config = dense_config(2, 3, metadata={"notes": "x" * 200})
    refused(model_file(tmp_path / "m.npz", config, small_arrays()), "over 100")


def test_a_layer_dtype_from_the_file_is_bounded(tmp_path):
    config = dense_config(2, 3)
    config["layers"][0]["config"]["dtype"] = "V100000000"  # 100 MB per value
    path = model_file(tmp_path / "m.npz", config, small_arrays())
    refused(path, "dtype must be float32 or float64")


# -- values of the wrong type ----------------------------------------------------------------

WRONG = {
    "metadata a list": ({"metadata": [1, 2]}, "config.metadata is a list"),
    "classes a number": ({"metadata": {"classes": 3}}, "config.metadata.classes is a number"),
    "preprocess a list": ({"metadata": {"preprocess": []}}, "config.metadata.preprocess"),
    "optimizer class": (
        {"loss": {"class": "MSE", "config": {}}, "optimizer": {"class": 5, "config": {}}},
        "config.optimizer.class is a number, expected a string",
    ),
    "loss a string": ({"loss": "mse"}, "config.loss is a string"),
    "metrics a string": ({"metrics": "accuracy"}, "config.metrics is a string"),
    "input_shape": ({"input_shape": [28, -1]}, "input_shape"),
    "unknown key": ({"surprise": 1}, "unknown key 'surprise'"),
    "epoch a float": ({"epoch": 1.5}, "config.epoch is a number, expected null or an integer"),
}


@pytest.mark.parametrize("case", WRONG)
def test_config_values_of_the_wrong_type(tmp_path, case):
    extra, match = WRONG[case]
    refused(model_file(tmp_path / "m.npz", dense_config(2, 3, **extra), small_arrays()), match)


@pytest.mark.parametrize(
    ("layer", "match"),
    [
        ({"class": ["Dense"]}, "config.layers[0].class is a list"),
        ({"class": "Dense", "config": [2, 3]}, "config.layers[0].config is a list"),
        ("Dense", "config.layers[0] is a string"),
        ({"class": "_Pool2D", "config": {}}, "unknown class '_Pool2D'"),
        ({"class": "Layer", "config": {}}, "unknown class 'Layer'"),
        ({"class": "Sequential", "config": {}}, "unknown class 'Sequential'"),
        ({"class": "__class__", "config": {}}, "unknown class '__class__'"),
        (
            {"class": "Dense", "config": {"in_features": "2", "out_features": 3}},
            "in_features must be",
        ),
        ({"class": "Dense", "config": {"in_features": 2, "out_features": 3, "x": 1}}, "bad config"),
        ({"class": "Conv2D", "config": {"kernel_size": [1, 2, 3]}}, "bad config"),
    ],
)
def test_layers_of_the_wrong_type(tmp_path, layer, match):
    config = {"format": "barenet-model", "version": 1, "layers": [layer]}
    refused(model_file(tmp_path / "m.npz", config, small_arrays()), match)


def test_deeply_nested_json(tmp_path):
    deep = json.loads("[" * 500 + "]" * 500)
    refused(model_file(tmp_path / "a.npz", dense_config(2, 3, metadata={"x": deep})), "nests")
    raw = np.frombuffer(b"[" * 100_000 + b"]" * 100_000, np.uint8)
    refused(write(tmp_path / "b.npz", {"config": npy(raw)}), "nests too deeply")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"format": "barenet-model", "version": 1, "layers": [], "x": NaN}', "NaN"),
        ('{"format": "barenet-model", "version": 1, "layers": [], "x": 1e400}', "1e400"),
        ('{"format": "barenet-model", "version": 1, "layers": [], "x": ' + "9" * 5000 + "}", ""),
        ("\xff\xfe", "not valid JSON"),
    ],
)
def test_json_outside_what_a_config_holds(tmp_path, text, match):
    raw = np.frombuffer(text.encode("latin-1" if "\xff" in text else "utf-8"), np.uint8)
    refused(write(tmp_path / "m.npz", {"config": npy(raw)}), match)


def test_a_plain_npy_renamed_npz(tmp_path):
    path = tmp_path / "plain.npz"
    path.write_bytes(npy(np.zeros((3, 2), np.float32)))
    refused(path, "not a readable barenet model file")


@pytest.mark.parametrize(
    ("member", "match"),
    [
        ({"descr": "|O", "fortran_order": False, "shape": (2,)}, "dtype object"),
        ({"descr": "<i8", "fortran_order": False, "shape": (3, 2)}, "dtype int64"),
        ({"descr": "<U3", "fortran_order": False, "shape": (3, 2)}, "dtype <U3"),
    ],
)
def test_members_of_a_foreign_dtype(tmp_path, member, match):
    members = {
        "config": config_bytes(dense_config(2, 3)),
        "param/0/weight": npy(header=member, data=bytes(48)),
        "param/0/bias": npy(np.zeros(3, np.float32)),
    }
    refused(write(tmp_path / "m.npz", members), match)


def test_config_of_a_foreign_dtype(tmp_path):
    members = {"config": npy(np.frombuffer(b'{"format": 1}', np.int8))}
    refused(write(tmp_path / "m.npz", members), "'config' has dtype int8")


def test_a_fortran_ordered_member_loads_as_saved(tmp_path, saved):
    members = members_of(saved)
    with np.load(saved) as npz:
        weight = npz["param/0/weight"]
    members["param/0/weight"] = npy(np.asfortranarray(weight))
    assert b"'fortran_order': True" in members["param/0/weight"]
    loaded = bn.load_model(write(tmp_path / "f.npz", members))
    assert np.array_equal(loaded.layers[0].params["weight"], weight)


def test_an_optimizer_state_that_does_not_fit(tmp_path, saved):
    members = members_of(saved)
    members["optimizer/0.m_scaled"] = npy(np.zeros(3, np.float32))
    refused(write(tmp_path / "o.npz", members), "does not fit the model's 23 parameters")


# -- values that are not numbers ---------------------------------------------------------------


@pytest.mark.parametrize("key", ["param/0/weight", "state/1/running_var", "optimizer/0.v_scaled"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_and_infinite_arrays_are_refused(tmp_path, saved, key, value):
    members = members_of(saved)
    with np.load(saved) as npz:
        a = npz[key].copy()
    a.flat[0] = value
    members[key] = npy(a)
    refused(write(tmp_path / "nan.npz", members), f"array {key!r} holds NaN or infinite values")


def test_a_good_checkpoint_still_loads(saved):
    model = bn.load_model(saved)
    assert model.metadata == {"dataset": "mnist", "classes": ["a", "b"]}
    assert model.optimizer is not None and model.optimizer.iterations == 1


def test_saving_refuses_metadata_that_would_not_load(tmp_path):
    model = bn.Sequential([bn.Dense(2, 3)])
    model.metadata = {"classes": 3}
    with pytest.raises(BarenetError, match=r"config\.metadata\.classes is a number"):
        model.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


# -- the command line ----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["evaluate", "predict"])
@pytest.mark.parametrize("case", ["metadata", "class", "nan"])
def test_the_command_line_shows_one_line(tmp_path, capsys, command, case):
    config = dense_config(2, 3)
    config["metadata"] = {"dataset": "mnist"}
    arrays = small_arrays()
    if case == "metadata":
        config["metadata"] = [1]
    elif case == "class":
        config["layers"][0]["class"] = ["Dense"]
    else:
        arrays["param/0/weight"][0, 0] = np.nan
    path = model_file(tmp_path / "bad.npz", config, arrays)
    args = [command, str(path)] + (["picture.png"] if command == "predict" else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    reason = {"metadata": "config.metadata", "class": "config.layers[0].class", "nan": "NaN"}
    assert "bad.npz" in err and reason[case] in err, err


# -- fuzzing ---------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.sampled_from([0, 1, 2, -1, 2**31, 2**63, 10**300])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from(["Dense", "Conv2D", "BatchNorm", "_Pool2D", "adam", "mse", "float64"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
CONFIG_KEYS = ["format", "version", "layers", "loss", "optimizer", "metrics", "input_shape"]
CONFIG_KEYS += ["metadata", "epoch", "optimizer_state", "config", "class", "in_features"]


def mutate(value: Any, data: st.DataObject) -> Any:
    """``value`` with one place, chosen by ``data``, replaced by random JSON or removed."""
    if isinstance(value, (dict, list)) and value and data.draw(st.booleans()):
        keys = list(value) if isinstance(value, dict) else list(range(len(value)))
        key = data.draw(st.sampled_from(keys))
        value = dict(value) if isinstance(value, dict) else list(value)
        value[key] = mutate(value[key], data)
        return value
    if isinstance(value, dict) and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(CONFIG_KEYS) | st.text(max_size=6))
        return {**value, key: data.draw(json_values)}
    return data.draw(json_values)


@FAST
@given(data=st.data())
def test_fuzzed_configs_give_a_model_or_a_model_file_error(tmp_path, saved, data):
    members = members_of(saved)
    config = mutate(config_of(saved), data)
    members["config"] = config_bytes(config)
    error, peak = load_measured(write(tmp_path / "fuzz.npz", members))
    assert error is None or isinstance(error, ModelFileError), repr(error)
    assert peak < 50 * MB


def member_mutations(a: np.ndarray) -> st.SearchStrategy[bytes]:
    """A stored array changed in one way: header, data, or the bytes as a whole."""
    good = npy(a)
    dims = st.integers(min_value=0, max_value=2**40)
    headers = st.fixed_dictionaries(
        {
            "descr": st.sampled_from(["<f4", "<f8", ">f4", "|O", "<i8", "|u1", "<U2", "<c8"]),
            "fortran_order": st.booleans(),
            "shape": st.lists(dims | st.integers(0, 8), max_size=4).map(tuple),
        }
    )
    return st.one_of(
        st.integers(0, len(good) - 1).map(lambda n: good[:n]),
        st.builds(lambda h, d: npy(header=h, data=d), headers, st.binary(max_size=64)),
        st.builds(lambda h: npy(header=h, data=a.tobytes()), headers),
        st.binary(max_size=200),
        st.tuples(st.integers(0, len(good) - 1), st.integers(0, 255)).map(
            lambda p: good[: p[0]] + bytes([p[1]]) + good[p[0] + 1 :]
        ),
    )


@FAST
@given(data=st.data(), deflate=st.booleans())
def test_fuzzed_members_give_a_model_or_a_model_file_error(tmp_path, saved, data, deflate):
    members = members_of(saved)
    with np.load(saved) as npz:
        arrays = {k: npz[k] for k in npz.files}
    key = data.draw(st.sampled_from(sorted(members)))
    members[key] = data.draw(member_mutations(arrays[key]))
    error, peak = load_measured(write(tmp_path / "fuzz.npz", members, deflate))
    assert error is None or isinstance(error, ModelFileError), repr(error)
    assert peak < 50 * MB
