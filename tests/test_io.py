"""Model files: round trips, atomic writes, and refusal of broken or foreign files."""

import json
import pickle
import zipfile

import numpy as np
import pytest

import barenet as bn
from barenet.datasets import spiral


@pytest.fixture
def trained(tmp_path):
    x, y = spiral(50, 3, rng=0)
    model = bn.Sequential(
        [
            bn.Dense(2, 16, weight_l2=1e-4),
            bn.ReLU(),
            bn.Dropout(0.1),
            bn.Dense(16, 3),
            bn.Softmax(),
        ],
        seed=0,
    )
    model.compile(loss=bn.CrossEntropy(label_smoothing=0.05), optimizer=bn.Adam(lr=0.01))
    model.fit(x, y, epochs=3, batch_size=25, verbose=0)
    model.metadata = {"class_names": ["a", "b", "c"], "preprocessing": "none"}
    return model, x, y


def test_round_trip_gives_identical_predictions(trained, tmp_path):
    model, x, y = trained
    path = model.save(tmp_path / "model")
    assert path.name == "model.npz"
    loaded = bn.load_model(path)
    assert np.array_equal(loaded.predict_proba(x), model.predict_proba(x))
    assert loaded.metadata == model.metadata
    assert loaded.get_config() == model.get_config()
    assert loaded.evaluate(x, y) == model.evaluate(x, y)
    with np.load(path, allow_pickle=False) as npz:
        assert not any(k.startswith("optimizer/") for k in npz.files)


def test_float64_model_round_trip(tmp_path):
    model = bn.Sequential([bn.Dense(3, 2, dtype=np.float64)], seed=0)
    loaded = bn.load_model(model.save(tmp_path / "m.npz"))
    assert loaded.dtype == np.float64
    assert np.array_equal(loaded.get_weights(), model.get_weights())


def test_missing_file(tmp_path):
    with pytest.raises(bn.ModelFileError, match="no such model file"):
        bn.load_model(tmp_path / "nope.npz")


def test_truncated_file(trained, tmp_path):
    path = trained[0].save(tmp_path / "m.npz")
    data = path.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 5):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(data[:cut])
        with pytest.raises(bn.ModelFileError, match=str(bad.name)):
            bn.load_model(bad)


def test_foreign_files(tmp_path):
    plain = tmp_path / "plain.npz"
    np.savez(plain, w=np.zeros(3))
    with pytest.raises(bn.ModelFileError, match="no config"):
        bn.load_model(plain)
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(bn.ModelFileError, match="not a readable"):
        bn.load_model(text)
    other = tmp_path / "other.npz"
    np.savez(other, config=np.frombuffer(json.dumps({"format": "x"}).encode(), np.uint8))
    with pytest.raises(bn.ModelFileError, match="format"):
        bn.load_model(other)


class Boom:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_pickle_bearing_files_run_no_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = tmp_path / "raw.npz"
    raw.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(bn.ModelFileError):
        bn.load_model(raw)
    inside = tmp_path / "inside.npz"
    np.savez(inside, config=np.array([Boom()], dtype=object))
    with pytest.raises(bn.ModelFileError):
        bn.load_model(inside)
    assert not (tmp_path / "PWNED").exists()


def test_mismatched_arrays_are_refused(trained, tmp_path):
    path = trained[0].save(tmp_path / "m.npz")
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["param/0/weight"] = np.zeros((5, 5), dtype=np.float32)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(bn.ModelFileError, match=r"param/0/weight.*\[5, 5\].*holds \[16, 2\]"):
        bn.load_model(bad)
    config = json.loads(arrays.pop("config").tobytes())
    config["layers"][0]["class"] = "Evil"
    arrays["config"] = np.frombuffer(json.dumps(config).encode(), np.uint8)
    np.savez(bad, **arrays)
    with pytest.raises(bn.ModelFileError, match="unknown class 'Evil'"):
        bn.load_model(bad)


def test_interrupted_save_leaves_the_old_file(trained, tmp_path, monkeypatch):
    model = trained[0]
    path = model.save(tmp_path / "m.npz")
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        model.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]
    assert zipfile.is_zipfile(path)


def test_saved_files_get_ordinary_permissions(trained, tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        path = trained[0].save(tmp_path / "m.npz")
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_npy_header_that_cannot_be_tokenised_is_a_model_file_error(tmp_path):
    model = bn.Sequential([bn.Dense(2, 3)], seed=0)
    model.compile()
    with zipfile.ZipFile(model.save(tmp_path / "good.npz")) as z:
        members = {info.filename: z.read(info) for info in z.infolist()}
    header = members["config.npy"]
    members["config.npy"] = header[:18] + b"(" + header[19:]  # an unclosed bracket
    with zipfile.ZipFile(tmp_path / "bad.npz", "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(bn.ModelFileError, match=r"bad\.npz: not a readable barenet model file"):
        bn.load_model(tmp_path / "bad.npz")
