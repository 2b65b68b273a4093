"""The real MNIST and Fashion-MNIST: shapes, pinned digests and the published statistics."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from barenet.datasets import (
    FASHION_CLASSES,
    MNIST_CLASSES,
    commands,
    load,
    scale,
    sources,
    write_idx,
)
from barenet.datasets.cache import describe
from barenet.datasets.specs import FASHION, MNIST, digest, get_spec
from barenet.errors import ArgumentError, DatasetError

pytestmark = pytest.mark.slow


def _check_layout_and_digests(data, spec):
    (x_train, y_train), (x_test, y_test) = data
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    for name, a in arrays.items():
        assert a.dtype == np.uint8, name
        assert a.shape == spec.shape(name), name
        assert digest(a) == spec.sha256[name], name
    assert x_train.shape == (60000, 28, 28) and y_test.shape == (10000,)


def test_mnist_is_the_pinned_data(mnist):
    _check_layout_and_digests(mnist, MNIST)


def test_fashion_is_the_pinned_data(fashion):
    _check_layout_and_digests(fashion, FASHION)


def _mean_std(images):
    """Mean and std of the pixels scaled to [0, 1], exactly, from a histogram of values."""
    counts = sum(np.bincount(part.ravel(), minlength=256) for part in np.array_split(images, 12))
    values = np.arange(256) / 255
    mean = counts @ values / counts.sum()
    return mean, np.sqrt(counts @ (values - mean) ** 2 / counts.sum())


def test_mnist_statistics(mnist):
    (x_train, _), (_, y_test) = mnist
    mean, std = _mean_std(x_train)
    assert mean == pytest.approx(0.1307, abs=5e-5) and std == pytest.approx(0.3081, abs=5e-5)
    assert scale(x_train[:100]).mean(dtype=np.float64) == pytest.approx(x_train[:100].mean() / 255)
    counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert np.bincount(y_test, minlength=10).tolist() == counts


def test_fashion_statistics(fashion):
    (x_train, y_train), (_, y_test) = fashion
    mean, std = _mean_std(x_train)
    assert mean == pytest.approx(0.2860, abs=5e-5) and std == pytest.approx(0.3530, abs=5e-5)
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert y_train[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]


def test_class_names():
    assert MNIST_CLASSES == tuple(str(k) for k in range(10))
    assert FASHION_CLASSES[0] == "T-shirt/top" and FASHION_CLASSES[9] == "Ankle boot"
    assert len(FASHION_CLASSES) == 10 and FASHION.classes == FASHION_CLASSES


def test_cache_records_its_source(mnist, fashion):
    for spec in (MNIST, FASHION):
        info = describe(spec)
        assert info["present"] and info["verified"], info
        assert info["sha256"] == spec.sha256
        assert info["source"] and info["source"] != "unknown"


def test_load_by_name_gives_the_same_arrays(fashion):
    (x_train, _), (_, y_test) = load("Fashion-MNIST")
    assert np.array_equal(x_train, fashion[0][0]) and np.array_equal(y_test, fashion[1][1])
    assert get_spec("fashion_mnist") is FASHION


def test_unknown_name_is_refused():
    with pytest.raises(ArgumentError, match="unknown dataset 'cifar'"):
        load("cifar")


# -- barenet data fetch / info -------------------------------------------------------------


def _parse(argv):
    parser = argparse.ArgumentParser(prog="barenet")
    commands.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_fetch_from_a_folder_into_a_fresh_cache(mnist, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BARENET_DATA", str(tmp_path / "cache"))
    (x_train, y_train), (x_test, y_test) = mnist
    folder = tmp_path / "idx"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", x_train)
    write_idx(folder / "train-labels-idx1-ubyte.gz", y_train)
    write_idx(folder / "t10k-images-idx3-ubyte", x_test)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", y_test)
    args = _parse(["data", "fetch", "mnist", "--data-dir", str(folder)])
    assert args.func(args) == 0
    assert f"source: folder {folder}" in capsys.readouterr().out
    assert describe(MNIST)["verified"]
    args = _parse(["data", "info"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "cache") in out and MNIST.sha256["x_train"] in out
    assert "fashion: not cached" in out


def test_info_flags_a_broken_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BARENET_DATA", str(tmp_path))
    (tmp_path / "fashion.npz").write_bytes(b"PK\x03\x04 broken")
    args = _parse(["data", "info", "--json"])
    assert args.func(args) == 1
    report = json.loads(capsys.readouterr().out)
    fashion_info = report["datasets"][1]
    assert fashion_info["present"] and not fashion_info["verified"]
    assert "unreadable" in fashion_info["problem"]


def test_fetch_failure_raises_one_dataset_error(tmp_path, monkeypatch):
    monkeypatch.setenv("BARENET_DATA", str(tmp_path))
    monkeypatch.setattr(sources, "SOURCES", [])
    args = _parse(["data", "fetch", "fashion"])
    with pytest.raises(DatasetError, match=r"could not get Fashion-MNIST from any source"):
        commands.run(args)
