"""The shipped convolutional networks: full test-set accuracy, size, and the commands that
made them."""

from __future__ import annotations

import shlex

import numpy as np
import pytest

from barenet.cli import build_parser, train_options
from barenet.conv import Conv2D
from barenet.datasets import scale
from barenet.metrics import accuracy
from barenet.normalization import BatchNorm
from barenet.pretrained import PRETRAINED, load_pretrained, path_of

TARGETS = {"mnist-cnn": 0.996, "fashion-cnn": 0.935}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_shipped_cnn_reaches_its_target_on_the_full_test_set(name, request):
    entry = PRETRAINED[name]
    (_, _), (x_test, y_test) = request.getfixturevalue(entry.dataset)
    model = load_pretrained(name)
    assert len(x_test) == 10_000
    measured = accuracy(y_test, model.predict(scale(x_test), batch_size=500))
    assert measured >= TARGETS[name]
    assert measured == pytest.approx(entry.test_accuracy, abs=5e-5)
    assert model.metadata["dataset"] == entry.dataset


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_shipped_cnn_file_is_small_convolutional_and_reproducible(name):
    path = path_of(name)
    assert path.stat().st_size < 5_000_000
    with np.load(path, allow_pickle=False) as npz:  # plain arrays only
        assert any(key.endswith("running_var") for key in npz.files)
    model = load_pretrained(name)
    kinds = {type(layer) for layer in model.layers}
    assert {Conv2D, BatchNorm} <= kinds
    words = shlex.split(PRETRAINED[name].command)
    assert "barenet" in words
    train = words[words.index("barenet") :]
    assert train[1] == "train" and train[train.index("--model") + 1] == "cnn"
    options = train_options(build_parser().parse_args(train[1:]))
    # the saved model records the options it was trained with: the command repeats them
    assert model.metadata["options"] == options.to_dict()
